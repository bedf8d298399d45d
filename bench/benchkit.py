"""What the benches share: peak RSS and a per-phase CPU-time profile.

The benches run as scripts (`python bench/NAME.py`), so this module is imported from the
script's own folder."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from typing import Any


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Process-CPU seconds per phase of the current step, by wrapping the callables a step
    looks up at call time (restored on `close`). A wrapped call made inside another wrapped
    call counts once, in the outer call's phase."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.now: dict[str, float] = {}
        self.rows: list[dict[str, float]] = []
        self._undo: list[Callable[[], None]] = []
        self._depth = 0

    def wrap(self, owner: Any, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a: Any, **k: Any) -> Any:
            outer = self._depth == 0
            self._depth += 1
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self._depth -= 1
                if outer:
                    self.now[phase] = self.now.get(phase, 0.0) + time.process_time() - t0

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, fn))

    def end_step(self, keep: bool) -> None:
        """Close the current step; keep its row (one value per phase name) when `keep`."""
        if keep:
            self.rows.append({p: self.now.get(p, 0.0) for p in self.names})
        self.now = {}

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
