"""Figures of issue 4: preflight time, verification overhead per node, and the verify function's package size.

- Preflight: the full probe (TCP, CONNECT, TLS, GET /v2/) through a real tinyproxy to a real TLS docker-registry
  on loopback (median and worst of 20 runs, per hop), and from the node-simulation testbed's private subnet
  (network namespaces) through its proxy host (needs root).
- Verification overhead per node: ``verify_pulls`` against the fake Kubernetes API server (HTTPS, EKS token
  signed per request window) with every node "pulled" on the kubelet's first status update and no poll sleep, so
  the figure is our own cost (API calls, TLS, JSON), not the pull and not the poll interval.
- Package size: what the verify function adds for Kubernetes access (our modules, no client library) next to
  lightkube and the official ``kubernetes`` client, each installed with its dependencies by pip (``--no-compile``,
  cached under ~/.cache/eks-proxy-bench; "not measured" when PyPI is unreachable).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CACHE = Path.home() / ".cache" / "eks-proxy-bench"
PACKAGE = REPO / "layers" / "eks_proxy" / "eks_proxy"
VERIFY_FILES = [
    REPO / "functions" / "verify" / "app.py",
    PACKAGE / "k8s.py",
    PACKAGE / "verify.py",
    PACKAGE / "config.py",
]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _preflight_figures(work: Path) -> list[tuple[str, str]]:
    if not all(shutil.which(t) for t in ("tinyproxy", "docker-registry", "openssl")):
        return [("preflight (loopback tinyproxy + TLS registry)", "not measured: tinyproxy/docker-registry missing")]
    from eks_proxy.checks.preflight import probe_registry

    from testkit.nodesim.pki import issue_cert, make_ca
    from testkit.nodesim.services import start_registry, start_tinyproxy

    ca = make_ca(work / "ca")
    cert = issue_cert(ca, work / "cert", ["localhost", "127.0.0.1"])
    registry = start_registry(
        "127.0.0.1", cert=cert.cert, key=cert.key, storage=work / "storage", server_name="localhost", workdir=work
    )
    proxy = start_tinyproxy(workdir=work, connect_ports=[registry.port])
    try:
        probe_registry(proxy.url, f"localhost:{registry.port}", cafile=str(ca.cert))  # warms the registry up
        runs = [probe_registry(proxy.url, f"localhost:{registry.port}", cafile=str(ca.cert)) for _ in range(20)]
    finally:
        proxy.stop()
        registry.stop()
    if any(not r.ok for r in runs):
        bad = next(r for r in runs if not r.ok)
        raise RuntimeError(f"preflight failed during the benchmark: {bad.detail}")
    totals = [r.latency_ms["total"] for r in runs]
    hops = ", ".join(
        f"{hop} {statistics.median(r.latency_ms[hop] for r in runs):.1f}" for hop in ("tcp", "connect", "tls", "get")
    )
    return [
        ("preflight total, loopback (median of 20)", f"{statistics.median(totals):.1f} ms (max {max(totals):.1f} ms)"),
        ("preflight per hop, median (ms)", hops),
    ]


def _testbed_figures(work: Path) -> list[tuple[str, str]]:
    """The same probe from the simulated private subnet (network namespaces, veth links) through its proxy host."""
    import os

    tools = ("tinyproxy", "docker-registry", "skopeo", "ip", "unshare", "openssl", "curl")
    if os.geteuid() != 0 or not all(shutil.which(t) for t in tools):
        return [("preflight on the netns testbed", "not measured: needs root and the node-simulation tools")]
    from eks_proxy.checks.preflight import PreflightResult, preflight
    from eks_proxy.proxy.value import parse_proxy_value

    from testkit.nodesim.netns import run_in_netns
    from testkit.nodesim.testbed import REGISTRY_NAME, REGISTRY_PORT, start_testbed

    bed = start_testbed(work)
    try:
        assert bed.ca is not None
        config, cafile = parse_proxy_value(bed.proxy_value), str(bed.ca.cert)

        def probe() -> PreflightResult:
            return preflight(config, f"{REGISTRY_NAME}:{REGISTRY_PORT}", cafile=cafile)

        runs = [run_in_netns(bed.node, probe) for _ in range(21)][1:]
    finally:
        bed.close()
    totals = [r.latency_ms["total"] for r in runs]
    if any(not r.ok for r in runs):
        raise RuntimeError("preflight failed on the testbed during the benchmark")
    return [
        (
            "preflight total, netns testbed (median of 20)",
            f"{statistics.median(totals):.1f} ms (max {max(totals):.1f} ms)",
        )
    ]


def _verify_figures(work: Path) -> list[tuple[str, str]]:
    if not shutil.which("openssl"):
        return [("verification overhead per node", "not measured: openssl missing")]
    from botocore.credentials import Credentials
    from eks_proxy.checks.eks_token import EksTokenSource
    from eks_proxy.checks.kube_client import KubernetesClient
    from eks_proxy.checks.verify import verify_pulls

    from testkit.fake_k8s import FakeKubernetes
    from testkit.nodesim.pki import issue_cert, make_ca

    cert = issue_cert(make_ca(work / "k8s-ca"), work / "k8s", ["localhost"])
    rows: list[tuple[str, str]] = []
    creds = Credentials("AKIDEXAMPLE", "bench-secret")
    for count in (1, 10, 50):
        nodes = [f"ip-10-0-{i // 250}-{i % 250}.eu-west-1.compute.internal" for i in range(count)]
        fake = FakeKubernetes(cert, outcomes=dict.fromkeys(nodes, "pulled")).start()
        try:
            client = KubernetesClient(fake.url, fake.ca_pem, EksTokenSource("prod", "eu-west-1", creds))
            started = time.perf_counter()
            result = verify_pulls(
                client, nodes, nodegroup="ng-bench", image="busybox", namespace="eks-proxy-verify",
                timeout_seconds=60, poll_seconds=0.0,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            client.close()
        finally:
            fake.stop()
        if not result.ok:
            raise RuntimeError(f"verification failed during the benchmark: {result.summary}")
        rows.append(
            (
                f"verification overhead, {count} node(s)",
                f"{_ms(elapsed / count)} per node, {len(fake.requests) / count:.1f} API calls per node "
                f"({_ms(elapsed)} total, excl. pull and poll interval)",
            )
        )
    return rows


def _tree_size(root: Path) -> tuple[int, int]:
    """(bytes on disk as files, bytes zipped with deflate)."""
    files = [p for p in root.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(root))
        return raw, archive.stat().st_size


def _files_size(paths: list[Path]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for p in paths:
            shutil.copy(p, root / p.name)
        return _tree_size(root)


def _pip_target(name: str) -> Path | None:
    target = CACHE / name
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(target), name],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        return None
    (target / ".complete").write_text("")
    return target


def _fmt(raw: int, zipped: int) -> str:
    def human(n: int) -> str:
        return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.1f} kB"

    return f"{human(raw)} unzipped, {human(zipped)} zipped"


def _size_figures() -> list[tuple[str, str]]:
    rows = [
        ("verify function code (app.py + k8s.py + verify.py + config.py)", _fmt(*_files_size(VERIFY_FILES))),
        ("Kubernetes client dependencies we ship", "0 bytes (http.client + ssl; botocore signs the token)"),
    ]
    for name in ("lightkube", "kubernetes"):
        target = _pip_target(name)
        if target is None:
            rows.append((f"{name} with dependencies (pip --target)", "not measured: pip install failed (offline?)"))
            continue
        raw, zipped = _tree_size(target)
        rows.append((f"{name} with dependencies (pip --target --no-compile)", _fmt(raw, zipped)))
    return rows


def figures() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        (work / "preflight").mkdir()
        (work / "verify").mkdir()
        (work / "testbed").mkdir()
        rows = _preflight_figures(work / "preflight")
        rows += _testbed_figures(work / "testbed")
        rows += _verify_figures(work / "verify")
    return rows + _size_figures()


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<64}  {value}")
