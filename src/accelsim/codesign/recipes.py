"""Compare compression recipes across models, chips and phases: one table of speed, memory,
energy and a numerical-error proxy, and its Pareto fronts.

```python
from accelsim.codesign.recipes import recipe_table, recipe_pareto_plot
df = recipe_table(["llama-3-8b"], ["trn2", "h100-sxm-80gb"], {"bf16": None, "w4a16": "int4-g128"},
                  ["decode"], batch=[1, 64])
recipe_pareto_plot(df[df.batch == 64], "sqnr_db", "energy_per_token_J", senses=("max", "min"))
```

``sqnr_db`` is an *accuracy proxy*, not a model-quality prediction: the SQNR of a GEMM output
(``formats.gemm_sqnr``) with weights and activations in the recipe's formats, on synthetic
Gaussian activations with outlier channels (``act_outliers``) and Gaussian weights.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping

import pandas as pd

from ..compress.recipes import as_compression


@lru_cache(maxsize=256)
def recipe_sqnr(weights: str | None, activations: str | None, act_outliers: int = 4) -> float:
    """GEMM-output SQNR (dB) of a weight / activation format pair (inf when both are None)."""
    from ..compress.sqnr import gemm_sqnr

    if weights is None and activations is None:
        return float("inf")
    return gemm_sqnr(weights or "bf16", activations or "bf16", m=32, k=512, n=128, act_outliers=act_outliers)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def recipe_table(models: Iterable[str], systems: Iterable[Any], recipes: Mapping[str, Any] | Iterable[Any],
                 phases: Iterable[str] = ("decode",), batch: int | Iterable[int] = 1, tp: int | None = None,
                 act_outliers: int = 4, **evaluate_kwargs) -> pd.DataFrame:
    """One row per (model, system, recipe, phase, batch): latency_s, tokens_per_s,
    memory_bytes_per_chip, fits_in_hbm, energy_per_token_J, energy_J, bound and sqnr_db.

    ``systems`` are preset names, SystemSpecs or ``(label, system, overrides)`` tuples (a
    hypothetical chip: ``("trn2-mxfp4", "trn2", ["chip.core.tensor.macs_per_cycle.fp4=..."])``).
    ``recipes`` maps labels to recipes (``Compression``, tag, dict, YAML path or None for the
    baseline), or is a list of tags. ``tp`` defaults to the smallest power of two whose chips
    hold the model's weights and cache (up to the system's chips)."""
    from ..api import evaluate

    recipes = dict(recipes) if isinstance(recipes, Mapping) else {str(r): r for r in recipes}
    rows = []
    for sysdef in systems:
        label, system, overrides = (sysdef if isinstance(sysdef, tuple)
                                    else (getattr(sysdef, "name", str(sysdef)), sysdef, ()))
        for model in _as_list(models):
            for rlabel, rec in recipes.items():
                comp = as_compression(rec)
                sq = recipe_sqnr(comp.weights if comp else None, comp.activations if comp else None, act_outliers)
                for phase in phases:
                    for b in _as_list(batch):
                        t = tp or 1
                        while True:
                            try:
                                r = evaluate(system, model, phase=phase, batch=b, tp=t, overrides=overrides,
                                             compression=comp, **evaluate_kwargs)
                            except Exception as e:  # noqa: BLE001 - recorded, not raised
                                rows.append({"model": str(model), "system": label, "recipe": rlabel, "phase": phase,
                                             "batch": b, "tp": t, "status": f"error: {e}"})
                                break
                            s = r.summary
                            if tp is None and not s["fits_in_hbm"] and 2 * t <= r.system.num_chips:
                                t *= 2
                                continue
                            rows.append({
                                "model": s["model"], "system": label, "recipe": rlabel, "phase": phase, "batch": b,
                                "tp": t, "weights": comp.weights if comp else None,
                                "activations": comp.activations if comp else None,
                                "kv_cache": comp.kv_cache if comp else None,
                                "sparsity": comp.sparsity if comp else "",
                                "latency_s": s["latency_s"], "tokens_per_s": s["tokens_per_s"],
                                "memory_bytes_per_chip": s["memory_bytes_per_chip"], "fits_in_hbm": s["fits_in_hbm"],
                                "feasible": s["fits_in_hbm"],
                                "energy_J": s["energy_J"], "energy_per_token_J": s["energy_per_token_J"],
                                "bound": max(s["time_by_bound_s"], key=s["time_by_bound_s"].get),
                                "sqnr_db": sq, "status": "ok"})
                            break
    df = pd.DataFrame(rows)
    if "sqnr_db" in df.columns:  # the baseline (no quantization) plots at the best finite SQNR + 10 dB
        fin = df["sqnr_db"].replace(float("inf"), float("nan"))
        df["sqnr_plot_db"] = df["sqnr_db"].where(df["sqnr_db"] != float("inf"), (fin.max() if fin.notna().any() else 0) + 10)
    return df


def recipe_pareto_plot(df: pd.DataFrame, x: str, y: str, senses: tuple[str, str] = ("max", "min"),
                       label: str | Iterable[str] = ("system", "recipe"), ax=None, **kw):
    """``sweep.plots.pareto_plot`` of ``df`` (dominated points faded, the front joined) with the
    front's points labelled by ``label`` columns. ``x == "sqnr_db"`` plots ``sqnr_plot_db``
    (the unquantized baseline placed 10 dB right of the best recipe)."""
    from ..sweep.analysis import pareto_front
    from ..sweep.plots import pareto_plot

    xc = "sqnr_plot_db" if x == "sqnr_db" and "sqnr_plot_db" in df.columns else x
    d = df[df.get("status", "ok") == "ok"].reset_index(drop=True) if "status" in df.columns else df
    fig = pareto_plot(d, xc, y, senses=senses, ax=ax, **kw)
    ax = fig.axes[0]
    cols = [label] if isinstance(label, str) else list(label)
    front = pareto_front(d, {xc: senses[0], y: senses[1]}).to_numpy()
    for i in range(len(d)):
        if front[i]:
            ax.annotate(" / ".join(str(d.loc[i, c]) for c in cols), (d.loc[i, xc], d.loc[i, y]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    return fig


__all__ = ["recipe_table", "recipe_pareto_plot", "recipe_sqnr"]
