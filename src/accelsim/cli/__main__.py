"""``python -m accelsim.cli``."""

from . import main

main()
