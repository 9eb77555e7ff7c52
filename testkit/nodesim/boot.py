"""Boot user data on the simulated node the way cloud-init (and, on AL2023, nodeadm) would.

cloud-init, as emulated here (cloudinit/user_data.py, handlers/boot_hook.py, shell_script.py):

- The user data is MIME only if ``MIME-Version:`` appears in its first 4,096 bytes; otherwise it is ONE part whose
  type is guessed from its first line (``#!`` shell script, ``#cloud-boothook``...). Parts of type text/plain or
  application/octet-stream are guessed the same way; gzip and Content-Transfer-Encoding are decoded.
- ``text/cloud-boothook``: the ``#cloud-boothook`` line is stripped, the rest written mode 0700 to
  /var/lib/cloud/instances/<id>/boothooks/ and EXECUTED DIRECTLY with ``INSTANCE_ID`` set, so it needs a ``#!``
  line ("Exec format error. Missing #! in script?" otherwise). A failing part is logged; the others still run.
- ``text/x-shellscript``: run later (cloud-final), same direct execution, no INSTANCE_ID. Both kinds of part
  get CRLF converted to LF first (``util.dos2unix``).
- ``application/node.eks.aws``: ignored by cloud-init; nodeadm reads it BEFORE the boothooks run (see
  :mod:`.nodeadm`).
- Before any part runs, the raw user data is stored as /var/lib/cloud/instance/user-data.txt, mode 0600
  (``Init._store_userdata``); scripts may read it (eks-proxy's AL2023 boothook reads its values from it).

Isolation: the parts run inside the node's network namespace and a private mount namespace
(``unshare -m --propagation private``) where /etc, /var, /run, /root, /opt and /usr are overlays on the real
directories with the upper layers in the node's disk directory, and /tmp is a fresh tmpfs: whatever the scripts
write lands in ``NodeDisk.root`` and the host is never touched. ``systemctl`` is a stub first on PATH that records
its arguments; ``cloud-init-per`` behaves like cloud-init's helper; ``update-ca-trust`` rebuilds the PEM bundle of
Amazon Linux's trust store from the image's and the admin's anchors (and records its calls).
The AMI's own files (its trust store: :meth:`NodeDisk.install_image_trust`) are a lower layer under the boots'
writes. /etc persists across boots, /run does not.
"""

from __future__ import annotations

import email
import email.policy
import gzip
import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from . import nodeadm
from .netns import exec_prefix
from .systemd import UnitEnvironment, unit_environment

BOOTHOOK = "text/cloud-boothook"
SHELLSCRIPT = "text/x-shellscript"
NODECONFIG = "application/node.eks.aws"
_GUESSED_TYPES = {"text/x-not-multipart", "text/plain", "application/octet-stream"}
_PREFIXES = (
    ("#!", SHELLSCRIPT),
    ("#cloud-boothook", BOOTHOOK),
    ("#cloud-config", "text/cloud-config"),
    ("#include", "text/x-include-url"),
    ("## template: jinja", "text/jinja2"),
)
OVERLAID = ("etc", "var", "run", "root", "opt", "usr")
SIMULATOR_PATHS = ("run/nodesim", "var/lib/cloud")  # our own bookkeeping on the node, not what the scripts wrote
CLOUD_INIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 90.0

SYSTEMCTL_STUB = """#!/bin/sh
# nodesim: systemctl records its arguments (one call per line, tab-separated) and succeeds
(IFS="$(printf '\\t')"; printf '%s\\n' "$*") >> /run/nodesim/systemctl.calls
exit 0
"""
CLOUD_INIT_PER = """#!/bin/sh
# nodesim: cloud-init-per FREQ NAME CMD... runs CMD once per FREQ (always, instance, once), like cloud-init's
freq=$1; name=$2; shift 2
case "$freq" in
  always) exec "$@" ;;
  instance) sem="/var/lib/cloud/instance/sem/bootper.$name.instance" ;;
  once) sem="/var/lib/cloud/sem/bootper.$name.once" ;;
  *) echo "cloud-init-per: bad frequency $freq" >&2; exit 1 ;;
esac
[ -e "$sem" ] && exit 0
"$@" || exit $?
mkdir -p "$(dirname "$sem")" && date +%s > "$sem"
"""

# Amazon Linux's trust store (ca-certificates, p11-kit): the image's anchors and the admin's, extracted into the
# bundle /etc/pki/tls/certs/ca-bundle.crt points at, which Go (containerd, kubelet, nodeadm) reads at start.
IMAGE_ANCHORS = "usr/share/pki/ca-trust-source/anchors"
ADMIN_ANCHORS = "etc/pki/ca-trust/source/anchors"
EXTRACTED_BUNDLE = "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
SYSTEM_BUNDLE = "etc/pki/tls/certs/ca-bundle.crt"
UPDATE_CA_TRUST = f"""#!/bin/sh
# nodesim: update-ca-trust [extract] as on Amazon Linux, PEM output only: every certificate of the image's anchors
# (/{IMAGE_ANCHORS}) and the admin's (/{ADMIN_ANCHORS}) -> /{EXTRACTED_BUNDLE}
[ "${{1:-extract}}" = extract ] || {{ echo "update-ca-trust: unknown command: $1" >&2; exit 1; }}
echo "update-ca-trust $*" >> /run/nodesim/update-ca-trust.calls
o=/{EXTRACTED_BUNDLE}; mkdir -p "${{o%/*}}" || exit 1
for f in /{IMAGE_ANCHORS}/* /{ADMIN_ANCHORS}/*; do
  [ -f "$f" ] && openssl crl2pkcs7 -nocrl -certfile "$f" 2>/dev/null | openssl pkcs7 -print_certs 2>/dev/null |
    sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p'
done > "$o.tmp" && mv "$o.tmp" "$o"
"""


class BootError(RuntimeError):
    """The simulation itself could not boot (not a failing part: those are reported in the result)."""


@dataclass(frozen=True)
class UserDataPart:
    index: int
    content_type: str
    payload: bytes
    filename: str


@dataclass(frozen=True)
class PartRun:
    part: UserDataPart
    returncode: int
    output: str


def _guess(payload: bytes) -> str | None:
    head = payload.lstrip()[:64].decode("utf-8", "replace").lower()
    for prefix, ctype in _PREFIXES:
        if head.startswith(prefix):
            return ctype
    return None


def parse_user_data(data: bytes) -> list[UserDataPart]:
    """The parts cloud-init would see, in order (types guessed where cloud-init guesses them)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if b"mime-version:" in data[:4096].lower():
        msg: Message = email.message_from_bytes(data, policy=email.policy.compat32)
        raw = [(m.get_content_type(), m.get_payload(decode=True), m.get_filename()) for m in msg.walk()]
        items = [(ctype, payload, name) for ctype, payload, name in raw if not ctype.startswith("multipart/")]
    else:
        items = [("text/x-not-multipart", data, None)]
    parts: list[UserDataPart] = []
    for n, (ctype, payload, name) in enumerate(items, 1):
        body = payload if isinstance(payload, bytes) else b""
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        if ctype in _GUESSED_TYPES:
            ctype = _guess(body) or ctype
        parts.append(UserDataPart(n, ctype, body, name or f"part-{n:03d}"))
    return parts


@dataclass
class NodeDisk:
    """The node's persistent state between boots: one overlay upper layer per overlaid directory.

    ``root`` looks like the node's / but holds only what boots wrote (``root/etc/...`` is the /etc upper layer).
    """

    directory: Path

    def __post_init__(self) -> None:
        self.directory = self.directory.resolve()
        top = self.directory.parts[1] if len(self.directory.parts) > 1 else ""
        if top in OVERLAID:
            # The overlays would hide (or overlap) their own upper layers: keep the disk under /tmp.
            raise BootError(f"a node disk cannot live under /{top} (overlaid during boot): use a directory in /tmp")
        for d in OVERLAID:
            (self.root / d).mkdir(parents=True, exist_ok=True)
            (self.directory / "work" / d).mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def image(self) -> Path:
        """The AMI's own files, a lower layer under the boots' writes (never in :meth:`written`)."""
        return self.directory / "image"

    def install_image_trust(self, pem: bytes) -> None:
        """The AMI's trust store: ``pem`` as its anchors, already extracted (as the image ships it)."""
        anchors = self.image / IMAGE_ANCHORS / "image-roots.pem"
        anchors.parent.mkdir(parents=True, exist_ok=True)
        anchors.write_bytes(pem)
        extracted = self.image / EXTRACTED_BUNDLE
        extracted.parent.mkdir(parents=True, exist_ok=True)
        extracted.write_bytes(pem)
        link = self.image / SYSTEM_BUNDLE
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to("../../ca-trust/extracted/pem/tls-ca-bundle.pem")

    def node_file(self, path: str) -> Path:
        """Where the node's file ``path`` (node-absolute, symlinks followed) lives: written by a boot, else the
        image's (the host's files below both are not the node's)."""
        relative = path.lstrip("/")
        for _ in range(8):
            for layer in (self.root, self.image):
                candidate = layer / relative
                if candidate.is_symlink():
                    relative = os.path.normpath(os.path.join(os.path.dirname(relative), os.readlink(candidate)))
                    break
                if candidate.exists():
                    return candidate
            else:
                raise FileNotFoundError(f"/{relative} is not on the node (neither written nor in the image)")
        raise FileNotFoundError(f"{path}: too many levels of symbolic links")

    def reset_run(self) -> None:
        """/run is a tmpfs: a reboot starts with an empty one."""
        for d in (self.root / "run", self.directory / "work" / "run"):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)

    def written(self) -> dict[str, bytes | str]:
        """Every path the boots wrote (node-absolute) -> bytes, ``symlink:<target>`` or ``deleted`` (whiteout)."""
        out: dict[str, bytes | str] = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if any(rel == p or rel.startswith(p + "/") for p in SIMULATOR_PATHS):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                out["/" + rel] = "symlink:" + os.readlink(path)
            elif stat.S_ISCHR(mode):
                out["/" + rel] = "deleted"
            elif stat.S_ISREG(mode):
                out["/" + rel] = path.read_bytes()
        return out


@dataclass
class BootResult:
    disk: NodeDisk
    parts: list[UserDataPart]
    runs: list[PartRun] = field(default_factory=list)
    nodeadm: nodeadm.NodeadmResult | None = None
    systemctl_calls: list[list[str]] = field(default_factory=list)  # made by the parts (nodeadm's: in .nodeadm)
    update_ca_trust_calls: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: str = ""

    @property
    def root(self) -> Path:
        return self.disk.root

    def failed(self) -> list[PartRun]:
        return [r for r in self.runs if r.returncode != 0]

    def environment(self, unit: str) -> UnitEnvironment:
        """The environment systemd would start ``unit`` with after this boot."""
        return unit_environment(self.root, unit)


def _runner_script(disk: NodeDisk, stage: Path, netns: str | None, instance_id: str, plan: list[str]) -> str:
    q = shlex.quote
    lines = [
        "set -eu",
        f"DISK={q(str(disk.directory))}",
        f"STAGE={q(str(stage))}",
        f"IID={q(instance_id)}",
        f"for d in {' '.join(OVERLAID)}; do",
        '  [ -d "/$d" ] || continue',
        '  L=/$d; [ -d "$DISK/image/$d" ] && L="$DISK/image/$d:/$d"',  # the AMI's own files over the host's
        '  mount -t overlay "nodesim-$d" -o "lowerdir=$L,upperdir=$DISK/root/$d,workdir=$DISK/work/$d" "/$d"',
        "done",
    ]
    if netns:
        # `ip netns exec` bind-mounted the namespace's hosts/resolv.conf over /etc; the overlay hid them.
        lines += [
            "for f in hosts resolv.conf; do",
            f'  [ -f /etc/netns/{q(netns)}/"$f" ] && mount --bind /etc/netns/{q(netns)}/"$f" /etc/"$f"',
            "done",
        ]
    lines += [
        "SIM=/run/nodesim; IDIR=/var/lib/cloud/instances/$IID",
        'mkdir -p "$SIM/bin" "$SIM/log" "$IDIR/boothooks" "$IDIR/scripts" "$IDIR/sem" /var/lib/cloud/sem',
        'ln -sfn "$IDIR" /var/lib/cloud/instance',
        'cp "$STAGE"/bin/* "$SIM/bin/"',
        'install -m 600 "$STAGE/user-data.txt" "$IDIR/user-data.txt"',  # cloud-init's raw copy, before any part
        'cp "$STAGE"/boothooks/* "$IDIR/boothooks/" 2>/dev/null || true',
        'cp "$STAGE"/scripts/* "$IDIR/scripts/" 2>/dev/null || true',
        # Even /usr/bin/systemctl called by absolute path must be the stub: never reach the host's systemd.
        "for s in $(readlink -f /usr/bin/systemctl /bin/systemctl /usr/sbin/systemctl 2>/dev/null | sort -u); do",
        '  [ -f "$s" ] && mount --bind "$SIM/bin/systemctl" "$s"',
        "done",
        "mount -t tmpfs nodesim-tmp /tmp",
        "cd /",
        "set +e",
        *plan,
    ]
    return "\n".join(lines) + "\n"


def boot(
    user_data: bytes,
    *,
    disk: NodeDisk,
    netns: str | None,
    instance_id: str = "i-0123456789abcdef0",
    nodeadm_environment: bool = True,
    timeout: float = BOOT_TIMEOUT,
) -> BootResult:
    """Boot ``user_data`` once on ``disk`` inside ``netns`` (see the module docstring for what is emulated).

    ``nodeadm_environment=False`` simulates an AL2023 AMI whose nodeadm predates ``spec.instance.environment``.
    """
    started = time.monotonic()
    parts = parse_user_data(user_data)
    result = BootResult(disk, parts)
    disk.reset_run()
    configs = [p.payload for p in parts if p.content_type == NODECONFIG]
    if configs:  # nodeadm-config runs before cloud-init's boothooks on AL2023
        result.nodeadm = nodeadm.apply(configs, disk.root, environment_field=nodeadm_environment)

    stage = disk.directory / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "boothooks", "scripts"):
        (stage / d).mkdir(parents=True)
    (stage / "user-data.txt").write_bytes(user_data)
    for name, text in (
        ("systemctl", SYSTEMCTL_STUB),
        ("cloud-init-per", CLOUD_INIT_PER),
        ("update-ca-trust", UPDATE_CA_TRUST),
    ):
        (stage / "bin" / name).write_text(text)
        (stage / "bin" / name).chmod(0o755)

    plan: list[str] = []
    not_executable: list[PartRun] = []
    runnable = [p for p in parts if p.content_type == BOOTHOOK] + [p for p in parts if p.content_type == SHELLSCRIPT]
    for part in runnable:
        text = part.payload.decode("utf-8", "replace").replace("\r\n", "\n")
        if part.content_type == BOOTHOOK:
            text = text.removeprefix("#cloud-boothook").lstrip()
            where, env = "boothooks", f"INSTANCE_ID={shlex.quote(instance_id)}"
        else:
            where, env = "scripts", ""
        if not text.startswith("#!"):
            not_executable.append(PartRun(part, 126, "Exec format error. Missing #! in script?"))
            continue
        name = f"part-{part.index:03d}"
        (stage / where / name).write_text(text)
        (stage / where / name).chmod(0o700)
        path = f"$IDIR/{where}/{name}"
        log = f"$SIM/log/{name}"
        plan.append(f'env -i PATH=$SIM/bin:{CLOUD_INIT_PATH} LANG=C.UTF-8 {env} "{path}" </dev/null >"{log}.log" 2>&1')
        plan.append(f'echo $? >"{log}.rc"')

    runner = stage / "runner.sh"
    runner.write_text(_runner_script(disk, stage, netns, instance_id, plan))
    cmd = [*exec_prefix(netns), "unshare", "-m", "--propagation", "private", "bash", str(runner)]
    # Own session: on timeout the whole boot (runner, parts, their children) is killed, not just the runner.
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as proc:
        try:
            result.log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BootError(f"boot did not finish within {timeout:.0f} s (a part hangs?)") from exc
    if proc.returncode != 0:
        raise BootError(f"the simulated boot failed before/after the parts ran (rc={proc.returncode}):\n{result.log}")

    logs = disk.root / "run" / "nodesim" / "log"
    for part in runnable:
        name = f"part-{part.index:03d}"
        failed = next((r for r in not_executable if r.part is part), None)
        if failed:
            result.runs.append(failed)
            continue
        rc_file = logs / f"{name}.rc"
        if not rc_file.is_file():
            raise BootError(f"{name} left no exit status:\n{result.log}")
        output = (logs / f"{name}.log").read_text(errors="replace")
        result.runs.append(PartRun(part, int(rc_file.read_text().strip()), output))
    trust_calls = disk.root / "run" / "nodesim" / "update-ca-trust.calls"
    if trust_calls.is_file():
        result.update_ca_trust_calls = trust_calls.read_text().splitlines()
    calls = disk.root / "run" / "nodesim" / "systemctl.calls"
    if calls.is_file():
        result.systemctl_calls += [line.split("\t") for line in calls.read_text().splitlines()]
    result.seconds = time.monotonic() - started
    return result
