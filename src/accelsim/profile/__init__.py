"""Profiles of real runs: import profiler traces (``trace``), match the measured work to
accelsim ops (``match``), split the step's wall time by where it went (``breakdown``)."""

from .breakdown import RULES, cycles_lost
from .match import match_work
from .trace import Trace, load_trace

__all__ = ["Trace", "load_trace", "match_work", "cycles_lost", "RULES"]
