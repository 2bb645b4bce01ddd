"""The README's ten-line Python example runs as written against a real server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from live_server import ALICE, LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- readme-python-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "the README lost its Python example"
    return found.group(1)


def test_the_readme_example(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10, code
    monkeypatch.setenv("TASKCELL_URL", server.url)
    monkeypatch.setenv("TASKCELL_API_KEY", ALICE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue() == "hello from Python\ncompleted\n"
