"""accelsim: a cycle-approximate ML accelerator simulator and cost model."""

__version__ = "0.1.0"
