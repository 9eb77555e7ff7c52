"""Cold start as Lambda runs it, and the layer's size: after (this tree) and before (the layer with pydantic).

How each figure is measured:

- The layer is built with its own Makefile (what `sam build` runs), for this tree ("after") and for the tree at
  `BEFORE` ("before": the last layer with pydantic and the whole of Powertools, built without bytecode, as it was).
  Set BENCH_BEFORE to another commit, or to "" to skip the before figures.
- Each built layer and the functions are copied read-only, like Lambda's /opt and /var/task, and every import runs
  in a fresh python3.13 with `-B` (no bytecode cache written; the bench checks that nothing was written). The
  runtime's boto3 is a copy of this environment's boto3 and its dependencies, compiled by python3.13 once, as the
  Lambda runtime ships them.
- Cold import of a handler: the CPU seconds (and the wall seconds) `import app` takes with sys.path = [the function,
  the layer, the runtime] (interpreter start-up excluded); `import boto3` alone is timed the same way. The two run
  in turn, A B A B ...; each pair gives a ratio and the median ratio is reported (the machine's speed drifts less
  within a pair). CPU time is the figure held to the goal: a Lambda sandbox has its vCPU to itself, a shared
  machine does not. Goal: every handler <= 1.2x `import boto3`.
- Layer size: every file under the layer's `python/` folder, unzipped, and zipped with DEFLATE as `sam package`
  does. Goal: <= 1.5 MB unzipped.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = os.environ.get("BENCH_BEFORE", "40e0015")  # the regrouped tree, before the contracts dropped pydantic
RUNS = int(os.environ.get("BENCH_COLDSTART_RUNS", "9"))
FUNCTIONS = ("dispatch", "rollout_step", "preflight", "verify")
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
GOAL_RATIO = 1.2
GOAL_LAYER_BYTES = 1_500_000
ENV = {
    "CLUSTER_NAMES": "prod",
    "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:eks-proxy",
    "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:eks-proxy-rollout",
    "POWERTOOLS_SERVICE_NAME": "eks-proxy",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}
_TIMER = """
import sys, time
sys.path[:0] = sys.argv[2:]
wall, cpu = time.perf_counter(), time.process_time()
__import__(sys.argv[1])
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def python313() -> str:
    """The first python3.13 that runs (the Lambda runtime's version: shipped bytecode is only read by it)."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    candidates = [shutil.which("python3.13"), *pyenv]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise RuntimeError("no python3.13 here: the cold start is measured with the Lambda runtime's Python")


def build_layer(source: Path, out: Path) -> tuple[Path, str]:
    """Run the layer's Makefile from ``source`` (a tree with layers/eks_proxy and functions) into ``out``."""
    done = subprocess.run(
        ["make", "-s", "-C", str(source / "layers" / "eks_proxy"), "build-EksProxyLayer", f"ARTIFACTS_DIR={out}"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"layer build failed in {source}: {done.stderr[-1500:]}")
    return out / "python", done.stdout


def tree_at(commit: str, out: Path) -> Path:
    """The functions and the layer sources at ``commit`` (git archive, no checkout)."""
    out.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "layers/eks_proxy", "functions"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def runtime_stand_in(python: str, out: Path) -> Path:
    """boto3 and its dependencies (the Lambda runtime's /var/runtime), compiled by python3.13 as installed."""
    import importlib.util

    out.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"{name} is not installed here (it comes with boto3)")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            # botocore/data (service models, ~25 MB of JSON) is not read by an import: linked, not copied.
            shutil.copytree(origin.parent, out / name, ignore=shutil.ignore_patterns("__pycache__", "data"))
            if (origin.parent / "data").is_dir():
                (out / name / "data").symlink_to(origin.parent / "data")
        else:
            shutil.copy2(origin, out / origin.name)
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(out)], check=True, capture_output=True)
    return out


def read_only_copy(source: Path, target: Path, *, drop_bytecode: bool = False) -> Path:
    """A copy nobody may write (root still can: the measurement checks afterwards that nothing was written)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc") if drop_bytecode else None
    shutil.copytree(source, target, symlinks=True, ignore=ignore)
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o555)
    return target


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _unzipped(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _zipped(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path.parent))
    return buffer.tell()


def _import_seconds(python: str, module: str, path: list[Path]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of importing ``module`` in a fresh interpreter."""
    command = [python, "-I", "-B", "-c", _TIMER, module, *map(str, path)]
    done = subprocess.run(command, env={**ENV, "PATH": os.environ.get("PATH", "")}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"import {module} from {path[0]} failed: {done.stderr[-1500:]}")
    cpu, wall = done.stdout.strip().splitlines()[-1].split()
    return float(cpu), float(wall)


def cold_imports(
    python: str, layer: Path, functions: Path, runtime: Path
) -> dict[str, tuple[float, float, float, float]]:
    """Per function: median ms of `import app` and of `import boto3` (CPU), median per-pair ratio (CPU, wall).

    CPU time is the primary figure: a Lambda sandbox has its vCPU to itself, a shared build machine does not, and
    its wall time then mostly measures the neighbours.
    """
    figures = {}
    for function in FUNCTIONS:
        pairs = []
        for _ in range(RUNS):
            app = _import_seconds(python, "app", [functions / function, layer, runtime])
            boto3 = _import_seconds(python, "boto3", [layer, runtime])
            pairs.append((app, boto3))
        figures[function] = (
            statistics.median(a[0] for a, _ in pairs) * 1000,
            statistics.median(b[0] for _, b in pairs) * 1000,
            statistics.median(a[0] / b[0] for a, b in pairs),
            statistics.median(a[1] / b[1] for a, b in pairs),
        )
    return figures


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB"


def measure(label: str, python: str, source: Path, work: Path, runtime: Path) -> list[tuple[str, str]]:
    layer, output = build_layer(source, work / "build")
    opt = read_only_copy(layer, work / "opt" / "python")
    task = read_only_copy(source / "functions", work / "var" / "task", drop_bytecode=True)  # sam build ships none
    before_files = _files(opt) | {f"task/{name}" for name in _files(task)}
    figures = cold_imports(python, opt, task, runtime)
    written = (_files(opt) | {f"task/{name}" for name in _files(task)}) - before_files
    if written:
        raise RuntimeError(f"{label}: bytecode written during the measurement: {sorted(written)[:5]}")
    size = _unzipped(layer)
    bytecode = "with bytecode" if any(layer.rglob("*.pyc")) else "sources only"
    rows = [
        (
            f"layer {label}: unzipped / zipped ({bytecode}; goal <= {_mb(GOAL_LAYER_BYTES)} unzipped)",
            f"{_mb(size)} ({size:,} bytes) / {_mb(_zipped(layer))}"
            + (" OVER THE GOAL" if label == "after" and size > GOAL_LAYER_BYTES else ""),
        )
    ]
    for function, (app_ms, boto3_ms, ratio, wall_ratio) in figures.items():
        over = " OVER THE GOAL" if label == "after" and ratio > GOAL_RATIO else ""
        rows.append(
            (
                f"cold import {label}: {function} / import boto3 (goal <= {GOAL_RATIO}x)",
                f"{ratio:.2f}x CPU ({app_ms:.0f} ms vs {boto3_ms:.0f} ms); wall {wall_ratio:.2f}x{over}",
            )
        )
    if "no python3.13 here" in output:
        rows.append((f"layer {label}: build note", "built without python3.13: no bytecode shipped"))
    return rows


def figures() -> list[tuple[str, str]]:
    python = python313()
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        work = Path(tmp)
        runtime = runtime_stand_in(python, work / "runtime")
        rows = [
            (
                "cold import: how",
                f"{python}, -B, layer and functions read-only, median ratio of {RUNS} handler/boto3 pairs (CPU time)",
            )
        ]
        if BEFORE:
            source = tree_at(BEFORE, work / "before-src")
            rows += measure(f"before ({BEFORE})", python, source, work / "before", runtime)
        rows += measure("after", python, REPO, work / "after", runtime)
        return rows


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<60}  {value}")
