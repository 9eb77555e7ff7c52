"""Network namespaces: create, link, run commands or Python code inside, and always tear down.

Names carry the creating process id (``nsim-<role>-<pid>-<rand>``) so parallel runs never collide and leftovers of
a killed run can be recognised and swept by the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

PREFIX = "nsim"
NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip [-n NETNS] ARGS...`; raises with iproute2's own message on failure."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done


def exec_prefix(netns: str | None) -> list[str]:
    """The argv prefix that runs a command inside ``netns`` (empty for the current namespace)."""
    return ["ip", "netns", "exec", netns] if netns else []


def run_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a thread that has joined ``netns``: sockets it creates live in that namespace.

    setns(CLONE_NEWNET) only moves the calling thread, so the test process itself never changes namespace.
    Example: ``sock = run_in_netns("nsim-node-1-ab", lambda: socket.create_connection(("10.0.1.10", 3128)))``.
    """
    if netns is None:
        return fn()
    box: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(NETNS_RUN / netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"in-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def unique_name(role: str, run_id: str) -> str:
    return f"{PREFIX}-{role}-{run_id}"


def new_run_id() -> str:
    """``<pid>-<random>``: unique per run, and tells the sweeper whether the owner is still alive."""
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete nsim-* namespaces (and their /etc/netns dirs) whose creating process is gone; return their names."""
    swept: list[str] = []
    if not NETNS_RUN.is_dir():
        return swept
    for entry in sorted(NETNS_RUN.iterdir()):
        parts = entry.name.split("-")
        if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
            continue
        if _pid_alive(int(parts[2])):
            continue
        delete(entry.name)
        swept.append(entry.name)
    return swept


def kill_pids(netns: str) -> None:
    """Kill every process still running inside ``netns`` (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        done = ip("netns", "pids", netns, check=False)
        pids = [int(p) for p in done.stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and ip("netns", "pids", netns, check=False).stdout.split():
            time.sleep(0.05)


def create(netns: str, hosts: Sequence[tuple[str, str]] = ()) -> None:
    """Create ``netns`` with loopback up, its own /etc/hosts (``ip netns exec`` bind-mounts it) and a resolver
    that fails fast (a name not in hosts must fail immediately, not after a DNS timeout)."""
    ip("netns", "add", netns)
    ip("link", "set", "lo", "up", netns=netns)
    etc = NETNS_ETC / netns
    etc.mkdir(parents=True, exist_ok=True)
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{addr} {name}" for addr, name in hosts]
    (etc / "hosts").write_text("\n".join(lines) + "\n")
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def delete(netns: str) -> None:
    """Kill what runs inside, delete the namespace and its /etc/netns directory; never raises for a missing one."""
    if (NETNS_RUN / netns).exists():
        kill_pids(netns)
        ip("netns", "del", netns, check=False)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def link(a: str, a_if: str, a_addr: str, b: str, b_if: str, b_addr: str) -> None:
    """A veth pair created directly inside both namespaces (no name ever appears in the host namespace)."""
    ip("link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)
    for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
        ip("addr", "add", addr, "dev", ifname, netns=ns)
        ip("link", "set", ifname, "up", netns=ns)


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[None]:
    """Delete ``names`` on exit, whatever happened inside."""
    try:
        yield
    finally:
        for name in names:
            delete(name)
