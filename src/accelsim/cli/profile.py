"""``accelsim profile``: profiles of real runs (PyTorch profiler / Kineto or Chrome traces)."""

from __future__ import annotations

import json

import click

from .util import friendly, on_command_line


@click.group("profile")
def profile_group():
    """Import a profiler trace and see where its step's time went."""


@profile_group.command("report")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--system", default=None, help="Predict each matched op on this system (preset or YAML).")
@click.option("--stack", default=None, help="Software stack of the predictions [the system's].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write the breakdown as a PNG.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Ops listed.")
@friendly
def report(trace, system, stack, as_json, plot, top):
    """Per-op table (count, measured time, share, matched op), the unmatched share and where the
    step's time went (exposed communication, work at / below its achievable rate, launch- and
    host-bound gaps, synchronization)."""
    from ..profile.report import profile_report
    from ..profile.trace import load_trace

    if stack and not system:
        raise click.UsageError("--stack is the stack of the predictions: it needs --system")
    rep = profile_report(load_trace(trace), system, stack)
    if plot:
        rep.figure().savefig(plot, dpi=120, bbox_inches="tight")
    click.echo(json.dumps(rep.to_dict(), default=str, indent=1) if as_json else rep.to_text(top))


@profile_group.command("replay")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly
def replay_command(trace, as_json):
    """Rebuild the traced step from its measured durations (host time between calls, launches,
    kernels on their streams, synchronization), run it in the event engine and print the
    replay error against the trace's own step time."""
    from ..profile.replay import replay
    from ..profile.trace import load_trace
    from ..units import fmt

    r = replay(load_trace(trace))
    d = {"trace": trace, "measured_step_s": r.measured_s, "replayed_step_s": r.replayed_s, "error": r.error,
         "launch_latency_s": r.launch_latency_s, "tasks": r.tasks}
    if as_json:
        click.echo(json.dumps(d))
    else:
        click.echo(f"{trace}: measured step {fmt(r.measured_s, 's')}, replayed {fmt(r.replayed_s, 's')} "
                   f"({100 * r.error:+.2f} %), launch-to-start latency {fmt(r.launch_latency_s, 's')}, "
                   f"{r.tasks} tasks")


@profile_group.command("whatif")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--system", required=True, help="The system to predict the step on (preset or YAML).")
@click.option("--stack", default=None, help="Software stack of the predictions [the system's].")
@click.option("--compression", default=None,
              help="A compression recipe (tag such as w4a16-g128, or a YAML file) applied to the matched GEMMs' "
                   "weights and the attention's KV cache.")
@click.option("--tp", type=click.IntRange(min=1), default=None,
              help="Predict the step at this tensor-parallel degree (the matched ops re-sharded Megatron-style, "
                   "an all-reduce after each row-parallel GEMM).")
@click.option("--traced-tp", type=click.IntRange(min=1), default=1, show_default=True,
              help="The tensor-parallel degree the trace was recorded at.")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="The model's hidden size, for --tp [the most common contraction size of the weight GEMMs].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Ops listed.")
@friendly
def whatif_command(trace, system, stack, compression, tp, traced_tp, hidden, as_json, top):
    """Predict the traced step on another system: every matched op takes accelsim's predicted
    time there, the host side and unmatched work keep their measured times; prints the step and
    the per-op differences."""
    from ..profile.replay import whatif
    from ..profile.trace import load_trace
    from ..units import fmt

    if tp is None and (hidden is not None or on_command_line("traced_tp")):
        raise click.UsageError("--hidden and --traced-tp describe the re-sharding to --tp: they need --tp")
    base, new, table = whatif(load_trace(trace), system, stack, compression, tp, traced_tp, hidden)
    if as_json:
        click.echo(json.dumps({"trace": trace, "system": system, "tp": tp, "measured_step_s": base.measured_s,
                               "replayed_step_s": base.replayed_s, "predicted_step_s": new.replayed_s,
                               "ops": table.reset_index().to_dict(orient="records")}, default=str))
        return
    on = f"{system}" + (f" with {compression}" if compression else "") + (f" at TP {tp}" if tp else "")
    click.echo(f"{trace}: measured step {fmt(base.measured_s, 's')} (replayed {fmt(base.replayed_s, 's')}); "
               f"on {on}: {fmt(new.replayed_s, 's')} ({new.replayed_s / base.replayed_s:.2f}x)")
    click.echo(f"\n{'op':<48}{'count':>7}{'measured':>12}{'on ' + system:>16}{'ratio':>8}")
    for name, r in table.head(top).iterrows():
        flag = "" if r["predicted"] else "  (measured time kept: no prediction)"
        click.echo(f"{str(name)[:47]:<48}{int(r['count']):>7}{fmt(r['measured_s'], 's'):>12}"
                   f"{fmt(r['predicted_s'], 's'):>16}{r['ratio']:>8.2f}{flag}")


@profile_group.command("rows")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--system", required=True, help="The system the trace ran on (preset or YAML).")
@click.option("--stack", default=None, help="The software stack it ran under [the system's].")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Measurement CSV to write (for correlate, calibrate and track).")
@friendly
def rows_command(trace, system, stack, out_path):
    """Write the trace's matched op instances as rows of the measurement schema (one row per
    GEMM, norm, softmax, elementwise op or collective, with its measured time)."""
    from ..profile import load_trace
    from ..profile.rows import measurement_rows

    df = measurement_rows(load_trace(trace), system, stack)
    if df.empty:
        raise click.UsageError("no op of the trace matches a row kind of the measurement schema")
    df.to_csv(out_path, index=False)
    click.echo(f"wrote {out_path}: {len(df)} rows ({', '.join(f'{k} {n}' for k, n in df['kind'].value_counts().items())})")
