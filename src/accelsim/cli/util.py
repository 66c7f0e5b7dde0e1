"""Shared pieces of the command-line modules: the error wrapper and the --out / --json helper."""

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
