"""The collector pause around large builds: paused inside, restored as it was after (also when
the build raises, when nested, and when it was already off)."""

import gc

import pytest

from accelsim.gcpause import gc_paused


@gc_paused
def _inner():
    return gc.isenabled()


@gc_paused
def _outer():
    return gc.isenabled(), _inner(), gc.isenabled()


@gc_paused
def _fails():
    raise ValueError("bad input")


def test_paused_inside_and_restored():
    assert gc.isenabled()
    assert _outer() == (False, False, False)
    assert gc.isenabled()


def test_restored_after_an_error():
    with pytest.raises(ValueError):
        _fails()
    assert gc.isenabled()


def test_left_off_when_it_was_off():
    gc.disable()
    try:
        assert _inner() is False
        assert not gc.isenabled()
    finally:
        gc.enable()
