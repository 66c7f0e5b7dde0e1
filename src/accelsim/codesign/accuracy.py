"""Accuracy evidence joined with predicted serving performance: per recipe, its change in
accuracy against the same source's baseline and accelsim's latency, tokens/s and energy per
token on a chip; a Pareto plot of the two."""

from __future__ import annotations

import math

import pandas as pd

from ..compress.evidence import with_deltas


def accuracy_vs_serving(evidence: pd.DataFrame, system, model: str, task: str, metric: str | None = None,
                        phase: str = "decode", batch: int = 8, context_len: int = 2048) -> pd.DataFrame:
    """One row per evidence row of ``model`` on ``task`` (``metric``: the first one the rows
    report, unless given): its accuracy change and the predicted step of its recipe on
    ``system``; recipes accelsim cannot build keep their accuracy with a reason instead."""
    from ..api import evaluate
    from ..errors import AccelsimError

    ev = with_deltas(evidence)
    ev = ev[(ev["model"] == model) & (ev["task"] == task)]
    if metric is None and len(ev):
        metric = ev["metric"].iloc[0]
    ev = ev[ev["metric"] == metric]
    cache: dict[str, dict] = {}
    out = []
    for r in ev.itertuples(index=False):
        if r.recipe not in cache:
            try:
                res = evaluate(system, model, phase=phase, batch=batch, context_len=context_len,
                               compression=None if r.recipe in ("bf16", "fp16") else r.recipe)
                s = res.summary
                cache[r.recipe] = {"latency_s": s["latency_s"], "tokens_per_s": s["tokens_per_s"],
                                   "energy_per_token_J": s.get("energy_per_token_J", math.nan), "reason": ""}
            except (AccelsimError, ValueError) as e:
                cache[r.recipe] = {"latency_s": math.nan, "tokens_per_s": math.nan, "energy_per_token_J": math.nan,
                                   "reason": str(e).splitlines()[0]}
        out.append({"recipe": r.recipe, "method": r.method, "task": task, "metric": metric, "value": r.value,
                    "delta": r.delta, "source": r.source, **cache[r.recipe]})
    return pd.DataFrame(out)


def pareto(df: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats on both tokens/s and accuracy change."""
    ok = df["tokens_per_s"].notna() & df["delta"].notna()
    front = pd.Series(False, index=df.index)
    for i in df.index[ok]:
        t, d = df.at[i, "tokens_per_s"], df.at[i, "delta"]
        beaten = ((df.loc[ok, "tokens_per_s"] >= t) & (df.loc[ok, "delta"] >= d)
                  & ((df.loc[ok, "tokens_per_s"] > t) | (df.loc[ok, "delta"] > d))).any()
        front[i] = not beaten
    return front


def pareto_figure(df: pd.DataFrame, title: str = ""):
    """Accuracy change against predicted tokens/s, one point per evidence row, the front drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ok = df[df["tokens_per_s"].notna() & df["delta"].notna()]
    front = pareto(df)
    for (recipe, method), g in ok.groupby(["recipe", "method"], sort=False, dropna=False):
        ax.scatter(g["tokens_per_s"], g["delta"], s=40, label=f"{recipe} {method}".strip())
    f = ok[front[ok.index]].sort_values("tokens_per_s")
    ax.plot(f["tokens_per_s"], f["delta"], "k--", lw=1, label="Pareto front")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("predicted tokens/s (one chip's step)")
    ax.set_ylabel("accuracy change (points, vs the same source's BF16)")
    ax.set_title(title or f"{df['task'].iloc[0] if len(df) else ''}: accuracy vs serving speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
