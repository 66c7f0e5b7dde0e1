"""Accuracy evidence: lm-evaluation-harness results files and the shipped table of published
accuracy (``workloads/accuracy/published.csv``), as one long table.

An lm-evaluation-harness results JSON (``lm_eval --output_path``, harness 0.4 layout) holds
``results``: task -> {"<metric>,<filter>": value, "<metric>_stderr,<filter>": stderr, ...},
``n-shot``: task -> shots, and ``config.model_args`` ("pretrained=meta-llama/Meta-Llama-3-8B,...").
Each (task, metric, filter) becomes a row; fractions are stored in percent points, as papers
report them. The model and recipe come from the caller (a results file does not say which
accelsim recipe produced the checkpoint); the model defaults to the name in ``model_args``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import ConfigError

COLUMNS = ("model", "recipe", "method", "task", "metric", "shots", "value", "baseline_value", "source", "notes")
PERCENT_METRICS = ("acc", "acc_norm", "exact_match", "pass@1", "pass_at_1", "inst_level_strict_acc",
                   "prompt_level_strict_acc", "inst_level_loose_acc", "prompt_level_loose_acc")


def load_lm_eval(path: str | Path, recipe: str, model: str | None = None, method: str = "",
                 source: str | None = None) -> pd.DataFrame:
    """The per-task results of one lm-evaluation-harness results file, as rows of ``COLUMNS``
    (``recipe``: the accelsim recipe tag of the evaluated checkpoint, "bf16" for the baseline;
    ``source``: a label shared by the files of one evaluation campaign, so that each recipe's
    change is taken against that campaign's baseline; default: the harness and its version).
    A metric reported under a filter other than "none" is named "metric (filter)"."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not JSON ({e})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ConfigError(f"{p}: no 'results' mapping (not an lm-evaluation-harness results file)")
    if model is None:
        args = str((data.get("config") or {}).get("model_args") or "")
        pretrained = next((a.split("=", 1)[1] for a in args.split(",") if a.startswith("pretrained=")), "")
        model = pretrained.rsplit("/", 1)[-1].lower() or str(data.get("model_name") or "unknown")
    shots = data.get("n-shot") or {}
    campaign = source or f"lm-evaluation-harness {data.get('lm_eval_version') or ''}".strip()
    rows = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict):
            continue
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            pct = metric in PERCENT_METRICS
            rows.append({"model": model, "recipe": recipe, "method": method, "task": task,
                         "metric": metric if filt == "none" else f"{metric} ({filt})",
                         "shots": shots.get(task), "value": 100.0 * value if pct else float(value),
                         "baseline_value": None, "source": campaign, "notes": f"lm-evaluation-harness results {p.name}"})
    if not rows:
        raise ConfigError(f"{p}: 'results' holds no '<metric>,<filter>' numbers")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def published(path: str | Path | None = None) -> pd.DataFrame:
    """The shipped table of published accuracy (every row cites its source)."""
    from ..configio import data_dir

    p = Path(path) if path is not None else data_dir("workloads") / "accuracy" / "published.csv"
    if not p.is_file():
        raise ConfigError(f"{p}: no such accuracy table")
    df = pd.read_csv(p)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{p}: missing column(s) {', '.join(missing)}")
    return df[list(COLUMNS)]


def with_deltas(evidence: pd.DataFrame) -> pd.DataFrame:
    """``evidence`` with ``delta``: the change in points against the baseline of the same
    model, task, metric and source (the row's ``baseline_value``, else the source's "bf16"
    row); None when the source has no baseline."""
    ev = evidence.copy()
    base = ev[ev["recipe"].isin(["bf16", "fp16"])].drop_duplicates(["model", "task", "metric", "source"])
    key = ["model", "task", "metric", "source"]
    ev = ev.merge(base[key + ["value"]].rename(columns={"value": "_base"}), on=key, how="left")
    b = ev["baseline_value"].where(ev["baseline_value"].notna(), ev["_base"])
    ev["delta"] = ev["value"] - b
    return ev.drop(columns=["_base"])
