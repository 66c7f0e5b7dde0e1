"""Kernels that run as plain Python until compiling them pays.

Importing numba and loading a compiled kernel from its cache costs about half a second to a
second, which is more than a first analytical evaluation spends in the kernels as plain Python
(a few GEMM mapping searches of a few milliseconds each). A ``Kernel`` therefore runs its
pure-Python function until its calls have taken ``python_budget_s`` seconds in all, then
compiles it with ``numba.njit(cache=True)`` (loaded from numba's cache when warm) and runs that
from then on; a kernel called once numba is already imported compiles at once. Kernels it
calls are compiled first and handed to it as dispatchers, as numba needs (its ``py_func``
keeps calling their Python twins). ``ACCELSIM_JIT=always`` compiles on the first call,
``never`` keeps plain Python (both for tests and debugging). ``py_func`` is the pure-Python
twin, as on a numba dispatcher.
"""

from __future__ import annotations

import os
import sys
import time
import types
from typing import Any, Callable

MODES = ("auto", "always", "never")


def mode() -> str:
    m = os.environ.get("ACCELSIM_JIT", "auto").strip().lower() or "auto"
    if m not in MODES:
        raise ValueError(f"ACCELSIM_JIT must be one of {', '.join(MODES)}, got {m!r}")
    return m


class Kernel:
    """A function that is compiled with numba once its plain-Python calls have taken
    ``python_budget_s`` seconds (``None``: called from Python it always runs as Python,
    compiled only for the compiled kernels that call it, e.g. a small scalar helper whose numba
    dispatch would cost more than its body)."""

    def __init__(self, fn: Callable, python_budget_s: float | None, nrt: bool = True):
        self.py_func = fn
        self.python_budget_s = python_budget_s
        self.nrt = nrt
        self.calls = 0
        self.python_s = 0.0
        self._compiled: Any = None
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def compiled(self):
        """The numba dispatcher (compiled, or loaded from numba's cache, on first use)."""
        if self._compiled is None:
            from numba import njit

            fn = self.py_func
            g = dict(fn.__globals__)  # the kernels it calls, as dispatchers (numba needs them so)
            for name in fn.__code__.co_names:
                if isinstance(g.get(name), Kernel):
                    g[name] = g[name].compiled()
            twin = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
            twin.__qualname__, twin.__module__, twin.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
            self._compiled = njit(cache=True, _nrt=self.nrt)(twin)
        return self._compiled

    def __call__(self, *args):
        if self.python_budget_s is None:
            return self.py_func(*args)
        if self._compiled is not None:
            return self._compiled(*args)
        m = mode()
        if m == "never" or (m == "auto" and self.python_s < self.python_budget_s and "numba" not in sys.modules):
            t = time.perf_counter()
            out = self.py_func(*args)
            self.calls += 1
            self.python_s += time.perf_counter() - t
            return out
        return self.compiled()(*args)


KERNELS: list[Kernel] = []
"""Every ``Kernel`` made by ``kernel``, in definition order."""


def kernel(python_budget_s: float | None = 0.2, nrt: bool = True) -> Callable[[Callable], Kernel]:
    """Decorator: ``@kernel()`` makes a ``Kernel`` (see the module docstring). ``nrt=False``
    compiles it without numba's reference counting (``numba.njit(_nrt=False)``), for a hot helper
    that takes arrays and never makes or returns one: numba otherwise takes and drops a reference
    to each array a call passes and each row view it makes, two atomic operations apiece."""

    def make(fn: Callable) -> Kernel:
        k = Kernel(fn, python_budget_s, nrt)
        KERNELS.append(k)
        return k

    return make


def compile_all() -> None:
    """Compile (or load from numba's cache) every kernel of the modules imported so far, so
    that what follows runs compiled from its first call (benchmarks keep JIT warm-up out of
    what they time)."""
    for k in KERNELS:
        if k.python_budget_s is not None:
            k.compiled()
