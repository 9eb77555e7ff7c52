"""Node simulation figures: what the test bed costs, and how long the boothook delays a boot when IMDS is down.

Medians of a few runs on this machine (wall clock). Needs root and the node-simulation tools; without them the
figures say so instead of failing `make bench`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TOOLS = ("tinyproxy", "docker-registry", "skopeo", "ip", "unshare", "openssl", "curl")
RUNS = 5


def _median_seconds(fn: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _render(node_os: str, value: str) -> bytes:
    cli = Path(sys.executable).with_name("eks-proxy")
    cmd = [str(cli if cli.exists() else "eks-proxy"), "render", "--value", value, "--os", node_os]
    cmd += ["--region", "eu-west-1", "--service-cidr", "172.20.0.0/16"]
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def figures() -> list[tuple[str, str]]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        reason = "needs root" if os.geteuid() != 0 else f"missing {', '.join(missing)}"
        return [("nodesim: node simulation figures", f"n/a ({reason})")]

    from testkit.nodesim.testbed import start_testbed

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-nodesim-") as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        bed = start_testbed(directory / "bed")
        setup = time.perf_counter() - start
        rows.append(("nodesim: testbed setup (3 netns, CA, registry + push, proxy, IMDS)", f"{setup:.2f} s"))
        try:
            for node_os in ("al2023", "al2"):
                user_data = _render(node_os, bed.proxy_value)
                seconds = _median_seconds(lambda u=user_data: bed.boot(u))  # type: ignore[misc]
                name = f"nodesim: boot of rendered {node_os} user data (median of {RUNS})"
                rows.append((name, f"{seconds * 1000:.0f} ms"))
            env = bed.boot(_render("al2023", bed.proxy_value)).environment("containerd").env
            seconds = _median_seconds(lambda: bed.pull(env))
            name = f"nodesim: image pull from the node through tinyproxy (median of {RUNS})"
            rows.append((name, f"{seconds * 1000:.0f} ms"))
            user_data = _render("al2023", bed.proxy_value)
            with bed.imds_unreachable():
                seconds = _median_seconds(lambda: bed.boot(user_data), runs=1)
            rows.append(("nodesim: al2023 boot with IMDS unreachable (fail-soft delay)", f"{seconds:.2f} s"))
            with bed.imds_hanging():
                seconds = _median_seconds(lambda: bed.boot(user_data), runs=1)
            rows.append(("nodesim: al2023 boot with IMDS hanging (fail-soft delay)", f"{seconds:.2f} s"))
        finally:
            bed.close()
    return rows


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<72}  {value}")
