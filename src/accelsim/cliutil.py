"""Shared pieces of the command-line modules."""

from __future__ import annotations

import functools
import sys

import click

from .errors import AccelsimError


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
