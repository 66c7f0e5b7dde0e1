"""Where a sweep's batches run: the executor, replaced by a fresh process pool when a dead
worker (the OOM killer, a SIGKILL) broke it, and workers that end with the sweep's process."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable


MAX_RETRIES = 2
"""Times a batch whose worker died (or whose pool broke) is sent again before its points are
recorded as failed."""


class Pool:
    """The executor a sweep submits to. A ProcessPoolExecutor that a dead worker broke (the OOM
    killer, a SIGKILL) is replaced by a fresh one of the same size; the replacements are shut
    down when the sweep ends."""

    def __init__(self, executor: Executor, task: Callable):
        self.executor, self.task, self.spares = executor, task, []

    def submit(self, ctx, batch):
        return self.executor.submit(self.task, ctx, [(p.index, p.overrides) for p in batch])

    def renew_if_broken(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        ex = self.executor
        if isinstance(ex, ProcessPoolExecutor) and getattr(ex, "_broken", False):
            self.executor = ProcessPoolExecutor(max_workers=ex._max_workers, initializer=die_with_parent)
            self.spares.append(self.executor)

    def close(self) -> None:
        for ex in self.spares:
            ex.shutdown(wait=True, cancel_futures=True)


def die_with_parent() -> None:
    """Worker initializer: end this process when the sweep's process dies (Linux), so a killed
    sweep leaves no workers behind."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except OSError:
            pass


__all__ = ["MAX_RETRIES", "Pool", "die_with_parent"]
