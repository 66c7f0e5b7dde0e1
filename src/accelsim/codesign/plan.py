"""Plan backward from accuracy targets: which recipes meet every target on the evidence, and
how fast each serves on each chip.

A target is the allowed change in points against the same source's BF16 baseline (``mmlu=-1.0``:
at most one point of MMLU lost; for a perplexity task, at most that much higher). A candidate is a
(recipe, method) of the evidence; it meets a target when its rows for that task (the worst of
them when several sources report it) stay within it, and it meets the plan when it meets every
target. A candidate without a row for a target task is listed as "no evidence", never counted
as meeting it unless ``allow_proxy`` (then it is marked "proxy"). The BF16 baseline always
meets. Candidates are ranked per chip by predicted serving speed (tokens/s of a decode step).
"""

from __future__ import annotations

import math

import pandas as pd

from ..compress.evidence import published, with_deltas

ACCELSIM_TAG = {"2:4": "w16a16+sparse2:4", "fp16": "bf16"}
"""Evidence recipe names that accelsim spells otherwise."""
PRODUCE = {"pruned-distilled": "pruning + distillation (a training run: accelsim run --phase train --prune)"}
"""Evidence recipes that are other models, produced by a training run; served as ``pruned``."""
HEAL_TOKENS = 94e9
"""Distillation tokens of the pruned-and-distilled evidence rows (Llama-3.1-Minitron-4B: 94 B,
Sreenivas et al. 2024, arXiv:2408.11796)."""
PTQ_CALIBRATION = (128, 2048)
"""Calibration sequences and their length a post-training quantization runs forward (GPTQ: 128
random 2,048-token segments of C4, Frantar et al. 2022, arXiv:2210.17323); the method's own solve
(GPTQ's per-layer Hessian inverses, AWQ's scale search) is not priced."""


def pruned(model: str, method: str = "Minitron-Depth"):
    """A pruned-and-distilled candidate as accelsim builds it: Minitron's width variant
    (``workloads/recipes/minitron-width.yaml``: hidden and MLP widths cut) for a method naming
    it, else the depth variant (half of ``model``'s layers removed)."""
    from ..compress.recipes import Compression, Pruning
    from ..configio import data_dir
    from ..workload import load_model

    if "width" in method.lower():
        return Compression.load(data_dir("workloads") / "recipes" / "minitron-width.yaml")
    return Compression(name="minitron-depth-half", prune=Pruning(layers=load_model(model).num_hidden_layers // 2))


def production(system, model: str, recipe: str, method: str = "") -> tuple[str, float]:
    """(what producing ``recipe`` from ``model`` takes, its chip-hours on ``system``): nothing for
    the BF16 baseline; the calibration forward passes of a post-training quantization; for a
    pruned-and-distilled model, the method's pruning (``pruned``) healed by distillation from the
    unpruned model over ``HEAL_TOKENS``."""
    from ..arch.presets import load_system
    from ..arch.spec import SystemSpec
    from .produce import importance_s, prune_heal_cost

    spec = system if isinstance(system, SystemSpec) else load_system(system)
    if recipe in ("bf16", "fp16"):
        return "-", 0.0
    if recipe in PRODUCE:
        c = prune_heal_cost(spec, model, pruned(model, method), HEAL_TOKENS, global_batch=256, seq_len=4096, teacher=model,
                            dp=spec.num_chips)
        return f"pruning + distillation, {HEAL_TOKENS / 1e9:.0f} B tokens", c.chip_hours
    n, seq = PTQ_CALIBRATION
    t, _, chips = importance_s(spec, model, n, seq)
    return f"PTQ calibration, {n} x {seq} tokens", t * chips / 3600.0


def _meets(delta: float, target: float, task: str) -> bool:
    return delta <= -target if "ppl" in task else delta >= target


def candidates(model: str, targets: dict[str, float], evidence: pd.DataFrame | None = None,
               allow_proxy: bool = False) -> pd.DataFrame:
    """One row per (recipe, method) of ``model``'s evidence: its change per target task and
    whether it meets the plan (``status``: meets / misses TASK / no evidence for TASK / proxy)."""
    from ..configio import suggest
    from ..errors import WorkloadError
    from ..workload import load_model

    load_model(model)  # an unknown model is refused here, not once per row of the table
    ev = with_deltas(published() if evidence is None else evidence)
    if not (ev["model"] == model).any():
        raise WorkloadError(f"no accuracy evidence for model {model!r}; the evidence covers: "
                            f"{', '.join(sorted(ev['model'].unique()))}")
    tasks = set(ev["task"])
    for t in targets:
        if t not in tasks:
            raise WorkloadError(f"target task {t!r} has no row in the evidence (any model).{suggest(t, tasks)} "
                                f"Its tasks: {', '.join(sorted(tasks))}")
    ev = ev[ev["model"] == model]
    rows = [{"recipe": "bf16", "method": "baseline", "status": "meets", **{t: 0.0 for t in targets}}]
    for (recipe, method), g in ev[~ev["recipe"].isin(["bf16", "fp16"])].groupby(["recipe", "method"], sort=False):
        row = {"recipe": recipe, "method": method}
        missing, missed = [], []
        for task, target in targets.items():
            d = g.loc[g["task"] == task, "delta"].dropna()
            if d.empty:
                row[task] = math.nan
                missing.append(task)
                continue
            worst = d.max() if "ppl" in task else d.min()
            row[task] = float(worst)
            if not _meets(worst, target, task):
                missed.append(task)
        if missed:
            row["status"] = "misses " + ", ".join(missed)
        elif missing:
            row["status"] = ("proxy (no evidence for " if allow_proxy else "no evidence for ") + ", ".join(missing) + (
                ")" if allow_proxy else "")
        else:
            row["status"] = "meets"
        rows.append(row)
    return pd.DataFrame(rows)


def plan(model: str, targets: dict[str, float], systems: list, evidence: pd.DataFrame | None = None,
         allow_proxy: bool = False, batch: int = 8, context_len: int = 2048) -> pd.DataFrame:
    """Per chip, every candidate with its status and predicted decode step (latency, tokens/s,
    energy per token), those that meet the targets first, fastest first."""
    from ..api import evaluate
    from ..errors import AccelsimError

    from ..arch.presets import load_system

    cands = candidates(model, targets, evidence, allow_proxy)
    for system in systems:  # an unknown system is refused here, not once per row of the table
        if isinstance(system, str):
            load_system(system)
    out = []
    for system in systems:
        made: dict[str, tuple[str, float]] = {}
        for c in cands.to_dict("records"):
            tag = ACCELSIM_TAG.get(c["recipe"], c["recipe"])
            pred = {"latency_s": math.nan, "tokens_per_s": math.nan, "energy_per_token_J": math.nan, "note": ""}
            comp = pruned(model, c["method"]) if c["recipe"] in PRODUCE else (None if tag == "bf16" else tag)
            try:
                s = evaluate(system, model, phase="decode", batch=batch, context_len=context_len,
                             compression=comp).summary
                pred.update(latency_s=s["latency_s"], tokens_per_s=s["tokens_per_s"],
                            energy_per_token_J=s.get("energy_per_token_J", math.nan))
            except (AccelsimError, ValueError) as e:
                pred["note"] = str(e).splitlines()[0]
            key = (c["recipe"], c["method"]) if c["recipe"] in PRODUCE else (
                c["recipe"] if c["recipe"] in ("bf16", "fp16") else "ptq")
            if key not in made:
                try:
                    made[key] = production(system, model, c["recipe"], c["method"])
                except (AccelsimError, ValueError) as e:
                    made[key] = (str(e).splitlines()[0], math.nan)
            pred["produce"], pred["produce_chip_hours"] = made[key]
            ok = c["status"] == "meets" or (allow_proxy and c["status"].startswith("proxy"))
            out.append({"system": str(system), "ok": ok, **c, **pred})
    df = pd.DataFrame(out)
    df = df.sort_values(["system", "ok", "tokens_per_s"], ascending=[True, False, False], kind="stable")
    df["rank"] = df.groupby("system").cumcount() + 1
    return df.reset_index(drop=True)


def plan_markdown(df: pd.DataFrame, targets: dict[str, float]) -> str:
    from ..units import fmt

    head = "| system | rank | recipe | method | " + " | ".join(f"{t} ({v:+g})" for t, v in targets.items()) + \
        " | status | latency | tokens/s | energy/token | to produce |"
    lines = [head, "|" + "---|" * (9 + len(targets))]
    for r in df.itertuples(index=False):
        d = r._asdict()
        cells = [f"{d[t]:+.2f}" if d[t] == d[t] else "-" for t in targets]
        lat = fmt(r.latency_s, "s") if r.latency_s == r.latency_s else (r.note or "-")
        tps = f"{r.tokens_per_s:,.0f}" if r.tokens_per_s == r.tokens_per_s else "-"
        ept = fmt(r.energy_per_token_J, "J") if r.energy_per_token_J == r.energy_per_token_J else "-"
        made = "-" if r.produce == "-" else (f"{r.produce}: {r.produce_chip_hours:,.3g} chip-h"
                                             if r.produce_chip_hours == r.produce_chip_hours else r.produce)
        lines.append(f"| {r.system} | {r.rank} | {r.recipe} | {r.method} | " + " | ".join(cells)
                     + f" | {r.status} | {lat} | {tps} | {ept} | {made} |")
    return "\n".join(lines)


FEATURES = {
    "native int4 math": lambda s: [f"chip.core.tensor.macs_per_cycle.int4="
                                   f"{2 * s.chip.core.tensor.macs_per_cycle.get('fp8', 2 * s.chip.core.tensor.macs_per_cycle['bf16'])}"],
    "fused dequantization": lambda s: ["chip.core.tensor.fused_dequant=true"],
    "2:4 sparsity at 2x": lambda s: ["chip.core.tensor.sparsity_patterns=['2:4']", "chip.core.tensor.sparsity_speedup=2"],
    "HBM bandwidth x1.5": lambda s: [f"chip.hbm.bandwidth_Bps={1.5 * s.chip.hbm.bandwidth_Bps}"],
    "core SRAM x2": lambda s: [f"chip.core.sram.capacity_bytes={2 * s.chip.core.sram.capacity_bytes}"],
}
"""Chip features an architecture review toggles, as overrides of a system preset: int4 math at
twice the FP8 rate, dequantization fused into the GEMM, 2:4 sparsity at twice the dense rate,
50 % more HBM bandwidth, twice the core SRAM."""


def architecture_review(model: str, targets: dict[str, float], systems: list[str], evidence: pd.DataFrame | None = None,
                        allow_proxy: bool = False, batch: int = 8, context_len: int = 2048) -> pd.DataFrame:
    """Per chip and feature toggled: the fastest recipe that meets the targets (proxies with
    ``allow_proxy``), its tokens/s and energy per token, and the change against the chip as
    it is."""
    from ..arch.presets import load_system

    cands = candidates(model, targets, evidence, allow_proxy)
    ok = cands[(cands["status"] == "meets") | (allow_proxy & cands["status"].str.startswith("proxy"))]
    ok = ok[~ok["recipe"].isin(list(PRODUCE))].drop_duplicates("recipe")
    out = []
    for name in systems:
        base = load_system(name)
        best0 = None
        for feature, overrides in [("as is", lambda s: [])] + list(FEATURES.items()):
            spec = load_system(name, overrides(base))
            df = plan(model, targets, [spec], evidence, allow_proxy, batch, context_len)
            df = df[df["ok"] & df["recipe"].isin(ok["recipe"]) & df["tokens_per_s"].notna()]
            top = df.iloc[0]
            row = {"system": name, "feature": feature, "best": top["recipe"], "tokens_per_s": top["tokens_per_s"],
                   "energy_per_token_J": top["energy_per_token_J"]}
            if best0 is None:
                best0 = row
            row["tokens_per_s_change"] = row["tokens_per_s"] / best0["tokens_per_s"] - 1.0
            row["energy_per_token_change"] = row["energy_per_token_J"] / best0["energy_per_token_J"] - 1.0
            out.append(row)
    return pd.DataFrame(out)


def review_markdown(df: pd.DataFrame) -> str:
    from ..units import fmt

    lines = ["| system | feature | best recipe | tokens/s | change | energy/token | change |", "|---|---|---|---|---|---|---|"]
    for r in df.itertuples(index=False):
        lines.append(f"| {r.system} | {r.feature} | {r.best} | {r.tokens_per_s:,.0f} | {100 * r.tokens_per_s_change:+.1f} % "
                     f"| {fmt(r.energy_per_token_J, 'J')} | {100 * r.energy_per_token_change:+.1f} % |")
    return "\n".join(lines)
