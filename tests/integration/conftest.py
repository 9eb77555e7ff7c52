"""Fixtures of the integration tests: the node-simulation testbed (network namespaces, proxy, registry, IMDS)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from testkit.nodesim.testbed import Testbed, start_testbed
from testkit.tools import NODESIM_TOOLS, require_root, require_tool


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through fixture teardown: namespaces get deleted


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """One topology for the session (≈0.5 s to build); always torn down, also when a test or the setup fails.

    Tests that change it (e.g. ``testbed.imds_unreachable()``) restore it on exit. A run killed with SIGKILL
    leaves namespaces behind; the next run sweeps them (their names carry the dead owner's pid).
    """
    require_root()
    require_tool(*NODESIM_TOOLS)
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    bed = start_testbed(tmp_path_factory.mktemp("nodesim"))
    try:
        yield bed
    finally:
        bed.close()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
