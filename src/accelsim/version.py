"""The package version (a bottom-layer module, so every layer can stamp its outputs with it)."""

__version__ = "0.1.0"
