"""Issue 5's figures: the wall time of `make demo` (`python -m demo`, goal: under a minute) and of `eks-proxy plan`.

The demo is run as the Makefile runs it, in a fresh process, three times; the median is reported with the demo's
own "done in" time (its work after imports). `eks-proxy plan` runs against a moto server holding the demo's account
(five node groups, three with a diff), also a fresh process each time, median of three.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EKS_PROXY = Path(sys.executable).parent / "eks-proxy"


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed, done.stdout


def _demo() -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    walls, inner = [], []
    for _ in range(3):
        wall, out = _timed([sys.executable, "-m", "demo"], env)
        walls.append(wall)
        found = re.search(r"done in ([0-9.]+) s", out)
        inner.append(float(found.group(1)) if found else float("nan"))
    return statistics.median(walls), statistics.median(inner)


def _plan() -> float:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    from demo.scenario import FIRST_PROXY, build_demo_world
    from testkit.moto_server import MotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log
    server = MotoServer()
    server.start()
    try:
        world = build_demo_world(server)
        world.put_proxy(FIRST_PROXY)
        env = {**os.environ, "AWS_ENDPOINT_URL": server.url}
        return statistics.median(_timed([str(EKS_PROXY), "plan", "--cluster", "prod"], env)[0] for _ in range(3))
    finally:
        server.stop()


def figures() -> list[tuple[str, str]]:
    wall, inner = _demo()
    return [
        ("make demo: wall time (python -m demo, median of 3)", f"{wall:.1f} s"),
        ("make demo: its own work after imports (median)", f"{inner:.1f} s"),
        ("eks-proxy plan, 5 node groups on a moto server (process, median of 3)", f"{_plan():.2f} s"),
    ]


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name}: {value}")
