"""``accelsim profile``: profiles of real runs (PyTorch profiler / Kineto or Chrome traces)."""

from __future__ import annotations

import json

import click

from .util import friendly


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

    rep = profile_report(load_trace(trace), system, stack)
    if plot:
        rep.figure().savefig(plot, dpi=120, bbox_inches="tight")
    click.echo(json.dumps(rep.to_dict(), default=str, indent=1) if as_json else rep.to_text(top))
