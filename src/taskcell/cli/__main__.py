"""``python -m taskcell.cli``."""

from __future__ import annotations

from taskcell.cli import main

main()
