"""Fixtures of the browser tests: Debian's Chromium, launched once per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from browsing import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()
