"""``accelsim presets`` and ``accelsim validate``: the shipped presets, and checks of system / model files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import AccelsimError, ConfigError
from ..units import fmt
from .util import friendly


@click.command()
@click.option("--json", "as_json", is_flag=True)
@friendly
def presets(as_json):
    """List the shipped system, stack and model presets."""
    from ..arch.presets import list_presets, load_system
    from ..stack import list_stacks, load_stack
    from ..workload import list_models, load_model

    systems = []
    for name in list_presets():
        s = load_system(name)
        systems.append({"name": name, "chip": s.chip.name, "num_chips": s.num_chips,
                        "interconnect": s.interconnect.kind if s.interconnect else None,
                        "peak_bf16_flops_per_chip": s.chip.peak_flops("bf16"), "hbm_bytes_per_chip": s.chip.hbm.capacity_bytes,
                        "hbm_bandwidth_Bps": s.chip.hbm.bandwidth_Bps, "stack": s.stack or None,
                        "description": s.description})
    stacks = [{"name": n, "runtime": st.runtime.name, "collectives": st.collectives.name, "kernels": st.kernels,
               "description": st.description}
              for n in list_stacks() for st in [load_stack(n)]]
    models = [{"name": n, "params": load_model(n).params()} for n in list_models()]
    if as_json:
        click.echo(json.dumps({"systems": systems, "stacks": stacks, "models": models}, indent=2))
        return
    n = max([16] + [len(s["name"]) + 2 for s in systems])
    c = max([24] + [len(s["chip"]) + 2 for s in systems])
    click.echo(f"systems:\n  {'name':<{n}}{'chip':<{c}}{'chips':>6}  {'interconnect':<16}{'bf16/chip':>14}"
               f"{'HBM/chip':>11}{'HBM BW':>12}  stack")
    for s in systems:
        click.echo(f"  {s['name']:<{n}}{s['chip']:<{c}}{s['num_chips']:>6}  {s['interconnect'] or '-':<16}"
                   f"{fmt(s['peak_bf16_flops_per_chip'], 'FLOP/s'):>14}{fmt(s['hbm_bytes_per_chip'], 'B', binary=True):>11}"
                   f"{fmt(s['hbm_bandwidth_Bps'], 'B/s'):>12}  {s['stack'] or '-'}")
    click.echo("stacks:")
    w = max([16] + [len(st["name"]) + 2 for st in stacks])
    rw = max([31] + [len(st["runtime"]) + 2 for st in stacks])
    for st in stacks:
        click.echo(f"  {st['name']:<{w}}{st['runtime']:<{rw}}{st['collectives']}"
                   + (f"; {st['kernels']} kernels" if st["kernels"] else ""))
    click.echo("models:")
    for m in models:
        click.echo(f"  {m['name']:<16}{fmt(m['params'], ''):>10} params")


RECIPE_KEYS = {"weights", "activations", "kv_cache", "sparsity", "keep_first", "keep_last", "quantize_head", "prune"}
"""Keys that mark a compression recipe (``compress.recipes.Compression``)."""
MODEL_KEYS = {"hidden_size", "family", "model_type", "num_hidden_layers"}
"""Keys that mark a model file."""


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files):
    """Check system, stack, kernel library, model (YAML or Hugging Face config.json), sweep space
    or compression recipe files, and measurement tables (CSV / parquet); report every problem
    with its field path and file."""
    from ..arch.presets import load_system
    from ..configio import load_yaml
    from ..stack import load_stack
    from ..workload import load_model

    bad = 0
    for f in files:
        try:
            if Path(f).suffix in (".csv", ".parquet"):
                from ..correlate.schema import load_measurements

                rows = load_measurements([f])
                kinds = ", ".join(f"{k} {n}" for k, n in rows["kind"].value_counts().items())
                click.echo(f"ok: {f}: {len(rows)} measurement rows ({kinds or 'none'})")
                continue
            if Path(f).suffix == ".json":
                m = load_model(f)
                click.echo(f"ok: {f}: model {m.name}, {m.params() / 1e9:.2f} B params (Hugging Face config)")
                continue
            data = load_yaml(Path(f))
            if "axes" in data or "sampling" in data:
                from ..sweep.space import DesignSpace

                space = DesignSpace.from_yaml(f)
                click.echo(f"ok: {f}: sweep space {space.name}, {len(space.points())} points")
            elif RECIPE_KEYS & data.keys() and not MODEL_KEYS & data.keys():
                from ..compress.recipes import Compression

                r = Compression.load(f)
                click.echo(f"ok: {f}: compression recipe {r.name or Path(f).stem}")
            elif "chip" in data or "interconnect" in data or "num_chips" in data:
                s = load_system(f)
                click.echo(f"ok: {f}: system {s.name}, {s.num_chips} x {s.chip.name}"
                           + (f", stack {s.stack}" if s.stack else ""))
                if s.stack:
                    load_stack(s.stack)
            elif "reduction_efficiency" in data or "unvectorized_elements_per_cycle" in data:
                from ..stack.presets import load_kernels

                lib = load_kernels(f)
                loop = (f", unvectorized loop {lib.unvectorized_elements_per_cycle:.3g} elements per core-cycle"
                        if lib.unvectorized_elements_per_cycle else "")
                click.echo(f"ok: {f}: kernel library {lib.name} (reductions at {lib.reduction_efficiency:.3g} "
                           f"of the copy rate{loop})")
            elif "collectives" in data or "runtime" in data or "base" in data:
                st = load_stack(f)
                click.echo(f"ok: {f}: stack {st.name} ({st.runtime.name}; {st.collectives.name})")
            elif MODEL_KEYS & data.keys():
                m = load_model(f)
                click.echo(f"ok: {f}: model {m.name}, {m.params() / 1e9:.2f} B params")
            else:
                top = ", ".join(map(str, data)) or "empty"
                raise ConfigError(f"{f}: not a system, stack, kernel library, model, sweep space or compression "
                                  f"recipe: it has none of their keys (top level: {top})")
        except AccelsimError as e:
            bad += 1
            click.echo(f"error: {e}", err=True)
    sys.exit(1 if bad else 0)
