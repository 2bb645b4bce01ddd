"""The built web page (React + Vite), shipped in the package and served by `taskcell serve`."""

from __future__ import annotations

from pathlib import Path

DIST_DIR = Path(__file__).parent / "dist"
"""Vite's build output (`index.html`, `assets/`); rebuilt by `npm run build` in `frontend/`."""

__all__ = ["DIST_DIR"]
