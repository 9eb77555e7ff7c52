"""A tiny OCI image built in Python (byte-for-byte deterministic), pushed and pulled with skopeo.

Example::

    image = build_oci_image(tmp / "oci", tag="1.0")                       # one layer holding /hello.txt
    push_image(image, registry.reference("nodesim/hello", "1.0"), ca.trust_dir)
    pulled = pull_image(registry.reference("nodesim/hello", "1.0"), tmp / "pulled", ca.trust_dir,
                        env={"HTTPS_PROXY": proxy.url}, netns=None)
    assert pulled.ok and pulled.file_content("hello.txt") == image.payload
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .netns import exec_prefix

PAYLOAD = b"pulled through the proxy by the eks-proxy node simulation\n"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SKOPEO_TIMEOUT = 60


@dataclass(frozen=True)
class OciImage:
    layout: Path  # an OCI image layout directory (oci-layout, index.json, blobs/sha256/...)
    tag: str
    manifest_digest: str
    layer_digest: str
    payload: bytes  # content of /hello.txt in the layer

    @property
    def source(self) -> str:
        """The skopeo transport reference of the local layout."""
        return f"oci:{self.layout}:{self.tag}"


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, len(data)


def _layer_tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), 0o644, 0, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_oci_image(layout: Path, tag: str = "1.0", payload: bytes = PAYLOAD) -> OciImage:
    """Write an OCI image layout with one gzip layer holding ``hello.txt`` (= ``payload``)."""
    layout.mkdir(parents=True, exist_ok=True)
    tar = _layer_tar({"hello.txt": payload})
    layer = gzip.compress(tar, mtime=0)
    layer_digest, layer_size = _blob(layout, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }
    config_digest, config_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return OciImage(layout, tag, manifest_digest, layer_digest, payload)


def push_image(image: OciImage, destination: str, trust_dir: Path, netns: str | None = None) -> None:
    """``skopeo copy oci:LAYOUT:TAG docker://HOST:PORT/REPO:TAG`` trusting the CA in ``trust_dir``."""
    cmd = [
        *exec_prefix(netns),
        "skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
        "--dest-cert-dir", str(trust_dir), "--dest-tls-verify=true",
        image.source, destination,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"push of {image.source} to {destination} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class PullResult:
    returncode: int
    stdout: str
    stderr: str
    destination: Path
    env: dict[str, str]  # exactly the environment skopeo ran with

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def manifest_digest(self) -> str:
        index = json.loads((self.destination / "index.json").read_text())
        return str(index["manifests"][0]["digest"])

    def file_content(self, name: str) -> bytes:
        """Read ``name`` out of the pulled image's (single) layer: proof the blob really came over the wire."""
        digest = self.manifest_digest().split(":", 1)[1]
        manifest = json.loads((self.destination / "blobs" / "sha256" / digest).read_text())
        layer = manifest["layers"][0]["digest"].split(":", 1)[1]
        data = gzip.decompress((self.destination / "blobs" / "sha256" / layer).read_bytes())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile(name)
            if member is None:
                raise FileNotFoundError(name)
            return member.read()


def pull_image(
    source: str,
    destination: Path,
    trust_dir: Path,
    *,
    env: Mapping[str, str],
    netns: str | None = None,
    timeout: int = SKOPEO_TIMEOUT,
) -> PullResult:
    """Pull ``source`` (docker://...) into an OCI layout at ``destination`` with ``env`` as the WHOLE environment
    (``env -i``: nothing from the test process leaks in), as containerd would with its unit's environment.

    PATH is added when ``env`` lacks it (systemd always sets one for a unit).
    """
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **env}
    cmd = [
        *exec_prefix(netns),
        "env", "-i", *(f"{k}={v}" for k, v in sorted(full_env.items())),
        "skopeo", "--insecure-policy", "--tmpdir", str(destination.parent), "copy", "--quiet",
        "--src-cert-dir", str(trust_dir), "--src-tls-verify=true",
        source, f"oci:{destination}:pulled",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return PullResult(done.returncode, done.stdout, done.stderr, destination, full_env)
