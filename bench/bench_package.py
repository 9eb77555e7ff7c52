"""Deployment package figures: one `sam build` (no Docker), the layer's size zipped and unzipped, each function's code.

Zipped sizes use DEFLATE like `sam package`; Lambda's limits are 250 MB unzipped (function + layers) and 50 MB for a
zipped direct upload.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = ("DispatchFunction", "RolloutStepFunction", "PreflightFunction", "VerifyFunction")
PACKAGES = {
    "eks_proxy": ("eks_proxy",),
    "Powertools": ("aws_lambda_powertools",),
    "tomlkit": ("tomlkit",),
}


def _sam() -> str:
    local = REPO / ".venv-sam" / "bin" / "sam"
    found = shutil.which("sam") or (str(local) if local.exists() else None)
    if not found:
        raise RuntimeError("sam not found: run `make .venv-sam/bin/sam`")
    return found


def _unzipped(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _zipped(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path))
    return buffer.tell()


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB ({size:,} bytes)"


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} kB"


def figures() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-sam-build-") as tmp:
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "SAM_CLI_DISABLE_VERSION_CHECK": "1"}
        started = time.monotonic()
        done = subprocess.run(
            [_sam(), "build", "--build-dir", f"{tmp}/build", "--cache-dir", f"{tmp}/cache"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"sam build failed: {done.stderr[-2000:]}")
        build = Path(tmp) / "build"
        layer = build / "EksProxyLayer"
        rows = [
            ("sam build (fresh cache, no Docker)", f"{seconds:.1f} s"),
            ("layer EksProxyLayer unzipped", _mb(_unzipped(layer))),
            ("layer EksProxyLayer zipped", _mb(_zipped(layer))),
        ]
        for label, modules in PACKAGES.items():
            size = sum(_unzipped(layer / "python" / m) for m in modules)
            rows.append((f"  layer part {label} unzipped", _mb(size)))
        largest = 0
        for function in FUNCTIONS:
            code = build / function
            largest = max(largest, _unzipped(code))
            rows.append((f"function {function} code", f"{_kb(_unzipped(code))} unzipped, {_kb(_zipped(code))} zipped"))
        total = _unzipped(layer) + largest
        rows.append(
            ("largest function + layer unzipped (limit 250 MB)", f"{_mb(total)}, {total / 250e6:.1%} of the limit")
        )
        return rows


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<52}  {value}")
