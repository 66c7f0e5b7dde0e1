"""A ratchet on realism: the error of every (file, kind) of workloads/measurements/parts/, with the
shipped presets and stacks and no fitted calibration, may only go down. The thresholds live in
tests/golden/parts_ratchet.json; ``pytest tests/test_ratchet.py --update-golden`` records
improvements (and new files or kinds) but never loosens a threshold.

The thresholds hold for one corpus: the golden records the digest of the parts/ files. A change
of the corpus itself (a row added, a row's stack or shape corrected, with its provenance page)
changes what the priors are fitted to, so ``--update-golden`` then pins the figures afresh and
lists every threshold that moved up; a change of the model with the same corpus only tightens.

A threshold is loosened only by hand, with a record under ``_loosened`` in the golden (which
threshold, from what to what, the commit's mechanism and why the move is accepted); the records
stay in the file for review."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelsim.correlate import correlate, load_measurements

ROOT = Path(__file__).resolve().parents[1]
PARTS = sorted((ROOT / "workloads" / "measurements" / "parts").glob("*.csv"))
RATCHET = Path(__file__).parent / "golden" / "parts_ratchet.json"
CORPUS_KEY = "_corpus_sha256"
LOOSENED_KEY = "_loosened"
SLACK = 0.002
"""Tolerance on MAPE and on |log bias| (a deliberate change of priors may move a figure by a
rounding step; anything larger is a regression)."""


def corpus_digest() -> str:
    """sha256 over the parts/ CSV files (names and bytes), in name order."""
    import hashlib

    h = hashlib.sha256()
    for p in PARTS:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def errors() -> dict[str, dict[str, dict[str, float]]]:
    """file -> kind -> {n, mape, log_bias} of the realistic default predictions."""
    files = pd.concat([load_measurements(p).assign(file=p.name) for p in PARTS], ignore_index=True)
    pr = correlate(PARTS).per_row.merge(files[["id", "file"]], on="id")
    pr = pr[~pr["skipped"]]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (f, k), g in pr.groupby(["file", "kind"]):
        ratio = g["predicted_time_s"] / g["measured_time_s"]
        out.setdefault(f, {})[k] = {"n": int(len(g)), "mape": float(g["ape"].mean()),
                                    "log_bias": float(np.log(ratio).mean())}
    return out


@pytest.fixture(scope="module")
def current():
    return errors()


def test_error_per_file_and_kind_never_grows(current, update_golden):
    old = json.loads(RATCHET.read_text()) if RATCHET.exists() else {}
    corpus = old.pop(CORPUS_KEY, None)
    loosened = old.pop(LOOSENED_KEY, [])
    for rec in loosened:  # each hand-made loosening says what, from, to and why
        assert {"what", "from", "to", "why"} <= set(rec) and rec["why"].strip(), rec
    if update_golden:
        digest = corpus_digest()
        if corpus != digest:  # a new corpus: pin afresh, saying what moved up
            moved = [f"{f}/{k}: MAPE {100 * o['mape']:.2f}% -> {100 * current[f][k]['mape']:.2f}%"
                     for f, kinds in old.items() for k, o in kinds.items()
                     if k in current.get(f, {}) and current[f][k]["mape"] > o["mape"] + SLACK]
            print("corpus changed; thresholds re-pinned" + "".join(f"\n  {m}" for m in moved))
            old = {}
        new = {CORPUS_KEY: digest, LOOSENED_KEY: loosened}
        for f, kinds in current.items():
            for k, e in kinds.items():
                o = old.get(f, {}).get(k)
                keep = o is not None and (o["mape"] < e["mape"] or abs(o["log_bias"]) < abs(e["log_bias"]))
                new.setdefault(f, {})[k] = ({"n": e["n"], "mape": min(o["mape"], e["mape"]) if o else e["mape"],
                                             "log_bias": e["log_bias"] if not keep or abs(e["log_bias"]) <= abs(o["log_bias"]) else o["log_bias"]})
        RATCHET.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        pytest.skip("ratchet rewritten (same corpus: thresholds only tightened; new corpus: re-pinned)")
    assert old, "no ratchet recorded: run pytest tests/test_ratchet.py --update-golden"
    assert corpus == corpus_digest(), ("workloads/measurements/parts/ changed since the ratchet was pinned: "
                                       "run pytest tests/test_ratchet.py --update-golden -s and review what moved")
    worse = []
    for f, kinds in old.items():
        for k, o in kinds.items():
            e = current.get(f, {}).get(k)
            if e is None:
                worse.append(f"{f}/{k}: no longer predicted")
                continue
            if e["mape"] > o["mape"] + SLACK:
                worse.append(f"{f}/{k}: MAPE {100 * e['mape']:.2f}% > {100 * o['mape']:.2f}%")
            if abs(e["log_bias"]) > abs(o["log_bias"]) + SLACK:
                worse.append(f"{f}/{k}: bias {math.exp(e['log_bias']):.3f} further from 1 than "
                             f"{math.exp(o['log_bias']):.3f}")
    assert not worse, "realism regressed:\n" + "\n".join(worse)


def test_every_parts_file_and_kind_is_pinned(current):
    old = json.loads(RATCHET.read_text()) if RATCHET.exists() else {}
    old.pop(CORPUS_KEY, None)
    old.pop(LOOSENED_KEY, None)
    missing = [f"{f}/{k}" for f, kinds in current.items() for k in kinds if k not in old.get(f, {})]
    assert not missing, f"not in the ratchet (run --update-golden): {missing}"
