"""A collective's choice as arrays (``cost.collective_table``) prices every size as
``collective_terms`` does, to the last bit, compiled and as plain Python."""

from __future__ import annotations

import random

import numpy as np
import pytest

from accelsim.arch.presets import load_system
from accelsim.cost.collective_table import collective_table, table_terms
from accelsim.cost.collectives import collective_terms
from accelsim.stack.presets import resolve
from accelsim.stack.realize import realize

CASES = [("dgx-h100", None, "realistic"), ("dgx-h100", "vllm-cuda", "realistic"), ("dgx-h100", None, "ideal"),
         ("dgx-a100", None, "realistic"), ("mi300x-8", None, "realistic"), ("trn2-48xl", None, "realistic"),
         ("tpu-v5e-256", None, "realistic"), ("tpu-v4-64", None, "ideal"), ("inf2-48xl", None, "realistic"),
         ("trn1-32xl", None, "realistic"), ("a100x4-nvlink", None, "realistic")]


def _realized_system(name, stack, mode):
    spec = load_system(name)
    st = resolve(stack, spec.stack, mode)
    return realize(spec, st), (st.collectives if st else None)


@pytest.mark.parametrize("system, stack, mode", CASES)
def test_table_prices_sizes_as_collective_terms(system, stack, mode):
    spec, library = _realized_system(system, stack, mode)
    rnd = random.Random(7)
    kernels = (table_terms.py_func, table_terms.compiled())
    seen = 0
    for kind in ("allreduce", "allgather", "reducescatter"):
        for ranks in (2, 4, 8, 16, 32, 64):
            if ranks > spec.num_chips:
                continue
            t = collective_table(spec, kind, ranks, library)
            if t is None:
                continue
            for n in [rnd.choice([1, 2, 4, 8]) * 2.0 ** rnd.randint(0, 34) for _ in range(60)]:
                want = collective_terms(spec, kind, n, ranks, library)
                for k in kernels:
                    out = np.empty(4)
                    k(t.cand, t.step, t.term, t.overhead_s, n, out)
                    assert (out[0], out[1], out[2], t.names[int(out[3])]) == want, (kind, ranks, n)
                seen += 1
    assert seen >= 60
