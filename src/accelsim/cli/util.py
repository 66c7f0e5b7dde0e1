"""Shared pieces of the command-line modules: the error wrapper, the --out / --json helper and
which options the command line gave."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import AccelsimError


def friendly(fn):
    """Turn accelsim's input errors into one message on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AccelsimError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def write_or_print_json(res, out, as_json) -> bool:
    """Write the result files to ``out`` if asked; with ``--json`` print the JSON summary and
    return True (the caller then prints nothing else)."""
    if out:
        res.write(out)
    if as_json:
        click.echo(res.to_json())
    return as_json


def on_command_line(*params: str) -> list[str]:
    """Those of ``params`` (click parameter names) that the command line gave, as opposed to
    their defaults: an option whose default is a real value (``--traced-tp 1``) is still "given"."""
    source = click.get_current_context().get_parameter_source
    return [p for p in params if source(p) == click.core.ParameterSource.COMMANDLINE]
