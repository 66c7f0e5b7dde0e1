"""The ``accelsim`` command line: one module per command group, registered on ``main``. Bad input
is reported in one clear message, never a traceback. Command modules import only click at load
time; the simulator is imported when a command runs."""

from __future__ import annotations

import click

from .bench import bench, bench_model
from .codesign import codesign_group
from .collective import collective
from .compress import formats_command, sqnr_command
from .correlate import calibrate, correlate, dashboard, track
from .presets import presets, validate
from .priors import priors
from .profile import profile_group
from .run import run
from .schema import schema
from .sweep import sweep_command
from .systolic import systolic
from .throughput import throughput_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="accelsim")
@click.option("--max-chips", type=click.IntRange(min=1), default=None,
              help="Largest system a run may build [65,536, or ACCELSIM_MAX_CHIPS].")
@click.option("--max-tasks", type=click.IntRange(min=1), default=None,
              help="Largest event-tier schedule, in tasks (about 200 B each at peak) [50 M, or ACCELSIM_MAX_TASKS].")
def main(max_chips: int | None, max_tasks: int | None) -> None:
    """accelsim: cycle-approximate ML accelerator simulator and cost model."""
    from ..limits import set_limits

    set_limits(chips=max_chips, tasks=max_tasks)


for _command in (run, systolic, presets, validate, collective, track, dashboard, bench, bench_model, correlate, calibrate,
                 sweep_command, formats_command, sqnr_command, priors, schema, profile_group, codesign_group,
                 throughput_command):
    main.add_command(_command)

__all__ = ["main"]
