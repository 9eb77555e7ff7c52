"""OUR fast-forward of moto's Step Functions engine clock, not moto behaviour: Retry intervals and Wait states are
recorded at their real length and then slept `scale` times as long (0: not at all).

moto's engine (moto/stepfunctions/parser) runs in the test process next to the in-process moto server; a Retry
sleeps with `time.sleep(interval)` in `retrier_decl`, a Wait state with `env.program_state_event.wait(seconds)` in
`WaitFunction._wait_interval`. `fast_forward()` swaps exactly those two for recording versions, so a rollout whose
backoff lasts minutes (the preflight's retries, NodegroupBusy's) runs in moments while the test can still assert
the schedule it asked for (`clock.retries`, `clock.waits`: seconds, in order).
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

_LOCK = threading.Lock()


@dataclass
class Clock:
    scale: float = 0.0
    retries: list[float] = field(default_factory=list)  # every Retry interval the engine asked for, in seconds
    waits: list[int] = field(default_factory=list)  # every Wait state's seconds

    def sleep(self, seconds: float) -> None:
        with _LOCK:
            self.retries.append(seconds)
        time.sleep(seconds * self.scale)

    @property
    def retried_seconds(self) -> float:
        return sum(self.retries)


@contextmanager
def fast_forward(scale: float = 0.0) -> Iterator[Clock]:
    """Record and shorten the engine's Retry sleeps and Wait states for the duration of the block."""
    clock = Clock(scale=scale)
    shim = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    shim.sleep = clock.sleep
    original_time = retrier_decl.time  # type: ignore[attr-defined]
    original_wait = WaitFunction._wait_interval

    def _wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        with _LOCK:
            clock.waits.append(wait_seconds)
        if wait_seconds > 0 and scale > 0:
            env.program_state_event.wait(wait_seconds * scale)

    retrier_decl.time = shim  # type: ignore[attr-defined,assignment]
    WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        retrier_decl.time = original_time  # type: ignore[attr-defined]
        WaitFunction._wait_interval = original_wait  # type: ignore[method-assign]
