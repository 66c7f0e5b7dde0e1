"""Kernels run as plain Python until compiling pays (accelsim.jit): a fresh process evaluates
without importing numba; after ``python_calls`` calls (or once numba is loaded) the compiled
kernel runs, with the same results."""

import subprocess
import sys

import numpy as np
import pytest

from accelsim.jit import Kernel, mode


def test_fresh_process_evaluates_without_numba():
    code = ("import sys, accelsim\n"
            "r = accelsim.evaluate('dgx-h100', 'llama-3-8b', phase='decode', batch=8, context_len=2048)\n"
            "print(r.summary['latency_s'] > 0, 'numba' in sys.modules, 'networkx' in sys.modules, "
            "'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "", "ACCELSIM_JIT": "auto"}).stdout.split()
    assert out == ["True", "False", "False", "False"]


def _twice(x):
    return 2.0 * _inner(x)


def _inner_py(x):
    return x + 1.0


_inner = Kernel(_inner_py, python_budget_s=None)


def test_kernel_switches_after_its_python_budget(monkeypatch):
    monkeypatch.setenv("ACCELSIM_JIT", "auto")
    monkeypatch.delitem(sys.modules, "numba", raising=False)  # as in a fresh process
    k = Kernel(_twice, python_budget_s=1.0)
    assert [k(1.0) for _ in range(3)] == [4.0] * 3 and k.calls == 3 and k._compiled is None
    k.python_s = 1.0  # the budget spent: the next call compiles, even without numba loaded
    assert k(2.0) == 6.0 and k._compiled is not None
    monkeypatch.undo()
    k = Kernel(_twice, python_budget_s=1.0)
    assert k(2.0) == 6.0 and k._compiled is not None  # compiled, with its callee as a dispatcher
    assert k.py_func(2.0) == 6.0 and _inner is not None and isinstance(_inner, Kernel)


def test_never_and_always(monkeypatch):
    monkeypatch.setenv("ACCELSIM_JIT", "never")
    k = Kernel(_twice, python_budget_s=0.0)
    assert k(1.0) == 4.0 and k._compiled is None
    monkeypatch.setenv("ACCELSIM_JIT", "always")
    assert k(1.0) == 4.0 and k._compiled is not None
    monkeypatch.setenv("ACCELSIM_JIT", "sometimes")
    with pytest.raises(ValueError, match="ACCELSIM_JIT"):
        mode()


def test_gemm_search_same_in_both_tiers():
    from accelsim.cost.mapping import gemm_search

    args = (4096.0, 1280.0, 8192.0, 1.0, True, 2.0, 2.0, 2.0, 128, 128, 4, 1, 1.0, True, 0.0,
            1.4e9, 1.0, 132.0, 228e3, 0.0, 50e6, 5e12, 3e12, 3e12 / 132, 4.0)
    np.testing.assert_array_equal(gemm_search.compiled()(*args), gemm_search.py_func(*args))


def test_help_loads_no_heavy_library():
    code = ("import sys\nfrom accelsim.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(*[m for m in ('pydantic', 'numpy', 'pandas', 'numba', 'networkx', 'yaml', 'matplotlib') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[-2].strip() == ""  # the last line: the heavy modules loaded (none)


def test_compile_all_compiles_every_registered_kernel():
    code = ("import accelsim.cost.mapping as m\n"
            "from accelsim.jit import KERNELS, compile_all\n"
            "assert m.gemm_search in KERNELS and m.gemm_search._compiled is None\n"
            "compile_all()\n"
            "print(all(k._compiled is not None for k in KERNELS if k.python_budget_s is not None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "", "ACCELSIM_JIT": "auto"}).stdout.split()
    assert out == ["True"]
