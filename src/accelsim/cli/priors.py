"""``accelsim priors``: derive the collective-library priors of the stacks from the corpus."""

from __future__ import annotations

import json

import click

from .util import friendly


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--stack", "stacks", multiple=True, help="Base stack to fit (repeatable); default: every one with rows.")
@click.option("--no-holdout", is_flag=True, help="Skip the collective libraries' leave-one-source-out refits (the slow part; the chips' leave-one-chip-out errors, which the error bands use, are always computed).")
@click.option("--hardware/--no-hardware", default=True, show_default=True,
              help="Fit every chip's achievable fractions and every runtime's kernel cost to the kernel rows.")
@click.option("--collectives/--no-collectives", default=True, show_default=True,
              help="Fit every collective library to the collective rows.")
@click.option("--field", "fields", multiple=True,
              help="Fit only this collective-library field (repeatable, e.g. p2p_op_host_s); the others keep their values.")
@click.option("--write", is_flag=True, help="Write the fitted values (and their sources) into the stack files.")
@click.option("--check", is_flag=True,
              help="Exit 1 when a shipped hardware prior or kernel cost differs from the fit by more than --tolerance "
                   "(the shipped files are not what a fit of these rows gives).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-3, show_default=True,
              help="Relative difference --check allows between a shipped value and the fitted one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly
def priors(files, stacks, no_holdout, fields, write, as_json, hardware, collectives, check, tolerance):
    """Fit each collective library (NCCL, RCCL, Neuron, ...) to the published collective rows of
    FILES (default: workloads/measurements/parts/*.csv) and report in-sample and
    leave-one-source-out error; --write stores the values in stacks/*.yaml."""
    from pathlib import Path

    from ..correlate.library_fit import derive, write_fit
    from ..errors import MeasurementError

    if not files:
        parts = Path("workloads/measurements/parts")
        files = sorted(str(p) for p in parts.glob("*.csv"))
        if not files:
            raise MeasurementError(f"no FILES given and no {parts}/*.csv here (run from the repository)")
    if fields and not collectives:
        raise click.UsageError("--field names a collective-library field: it needs --collectives")
    if check and (write or not hardware):
        raise click.UsageError("--check compares the shipped hardware priors with a fit: it needs --hardware and "
                               "no --write")
    fits = derive(list(files), stacks or None, holdout=not no_holdout, only=fields) if collectives else []
    corpus = str(Path(files[0]).parent) if len({str(Path(f).parent) for f in files}) == 1 else "the given files"
    hw, drifted = None, []
    if hardware:
        from ..arch.presets import list_presets, load_raw
        from ..correlate.priors import fit_hardware, priors_table, write_hardware
        from ..correlate.schema import load_measurements, rows_of

        # the leave-one-chip-out errors take seconds and the printed error bands read them: always
        try:
            hw = fit_hardware(rows_of(load_measurements(list(files))), holdout=True)
        except MeasurementError as e:
            raise MeasurementError(f"{e}; --no-hardware fits the collective libraries alone") from None
        # chips of presets that name a stack (an illustrative chip with no stack gets no priors)
        chips = sorted({raw["chip"]["name"] for p in list_presets() for raw in [load_raw(p)[0]] if raw.get("stack")})
        table = priors_table(hw, chips)
        from ..correlate.priors import drift

        drifted = drift(hw, chips, tolerance) if not write else []
    written = []
    if write:  # the libraries first: a program stack's per-call cost is fitted on top of its library
        for f in fits:
            written.append(write_fit(f, corpus))
    calls = {}
    if collectives:
        from ..correlate.library_fit import fit_program_call, program_stacks_with_rows
        from ..correlate.schema import load_measurements, rows_of

        for st, rs in program_stacks_with_rows(rows_of(load_measurements(list(files)))).items():
            calls[st] = (*fit_program_call(rs, st), len(rs))
    if write:
        from ..correlate.library_fit import write_program_call

        for st, (c, before, after, n) in calls.items():
            written.append(write_program_call(st, c, n, before, after, corpus))
        if hw is not None:
            written += write_hardware(hw, corpus, chips)
    if as_json:
        click.echo(json.dumps({"collectives": [{"stack": f.stack, "rows": f.rows, "mape": f.mape, "bias": f.bias,
                                                "loso_mape": f.loso_mape, "values": f.values,
                                                "determined": f.determined, "per_source": f.per_source} for f in fits],
                               "hardware": table if hw is not None else None,
                               "kernel_launch_s": hw.launch if hw is not None else None,
                               "tensor_launch_s": hw.tensor_launch if hw is not None else None,
                               "alone_kernel_s": hw.alone if hw is not None else None,
                               "drift": ([{"where": w, "field": f, "shipped": a if a == a else None,
                                           "fitted": b if b == b else None} for w, f, a, b in drifted]
                                         if hw is not None else None)}, indent=2))
        _exit_on_drift(check, hw, drifted)
        return
    if hw is not None:
        click.echo("achievable priors (fitted on the chip's own rows; the rest from its nearest sibling):")
        for c, e in table.items():
            vals = ", ".join(f"{k} {v}" for k, v in e["achievable"].items())
            held = ", ".join(f"{k} {100 * v:.0f}%" for k, v in e["leave_one_chip_out_mape"].items()) or "n/a"
            ins = ", ".join(f"{k} {100 * v:.0f}%" for k, v in e["in_sample_mape"].items()) or "no rows"
            click.echo(f"  {c:<22}{vals}")
            click.echo(f"  {'':<22}in-sample MAPE {ins}; leave-one-chip-out {held}"
                       + (f"; from sibling: {', '.join(f'{k} ({s})' for k, s in e['from_sibling'].items())}"
                          if e["from_sibling"] else ""))
        click.echo("kernel cost per runtime: " + ", ".join(f"{k} {1e6 * v:.1f} us" for k, v in hw.launch.items()))
        if hw.tensor_launch:
            click.echo("GEMM library call beyond it: " + ", ".join(f"{k} +{1e6 * v:.1f} us"
                                                                  for k, v in hw.tensor_launch.items()))
        if hw.alone:
            click.echo("a kernel timed alone (do_bench), in place of it: " + ", ".join(f"{k} {1e6 * v:.1f} us"
                                                                                   for k, v in hw.alone.items()))
        if hw.kernels:
            click.echo("reductions (softmax, norms) per kernel library, fraction of the copy rate: "
                       + ", ".join(f"{k} {v:.3f}" for k, v in hw.kernels.items()))
        if drifted:
            click.echo(f"shipped values that differ from this fit by more than {100 * tolerance:g} % "
                       f"(accelsim priors --write would replace them):")
            for w, f, a, b in drifted:
                rel = f" ({100 * (b / a - 1):+.1f} %)" if a and a == a and b == b else ""
                click.echo(f"  {w:<22}{f:<30}shipped {a:.4g}, fit {b:.4g}{rel}")
        elif not write:
            click.echo(f"the shipped hardware priors and kernel costs are this fit's (within {100 * tolerance:g} %)")
    if collectives and not fits:
        click.echo("no collective rows a library is fitted on in FILES (each library fits the rows measured under its "
                   "own stack): no collective library fitted")
    for f in fits:
        loso = "n/a" if f.loso_mape is None else f"{100 * f.loso_mape:.1f}%"
        click.echo(f"{f.stack}: {f.rows} rows from {len(f.sources)} sources, MAPE {100 * f.mape:.1f}% "
                   f"(bias {f.bias:.2f}), leave-one-source-out {loso}")
        for k, v in f.values.items():
            shown = f"{1e6 * v:.2f} us" if k.endswith("_s") else f"{v:.3f}"
            click.echo(f"  {k:<34}{shown:>12}" + ("" if k in f.determined else "   (not fitted: kept)"
                                                     if f.only and k not in f.only else "   (no row constrains it: kept)"))
    for st, (c, before, after, n) in calls.items():
        click.echo(f"{st}: per-call cost {1e6 * c:.1f} us from {n} collective rows (MAPE {100 * before:.1f}% -> "
                   f"{100 * after:.1f}%)")
    if written:
        click.echo("wrote " + ", ".join(str(p) for p in written))
    _exit_on_drift(check, hw, drifted)


def _exit_on_drift(check: bool, hw, drifted: list) -> None:
    """``--check``: exit 1 when the shipped priors are not the fit's."""
    if check and hw is not None and drifted:
        raise SystemExit(1)
