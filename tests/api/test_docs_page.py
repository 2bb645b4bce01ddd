"""/docs and /redoc load their scripts and styles from this server, so they work offline."""

from __future__ import annotations

import re

import httpx
import pytest

ASSET = re.compile(r"""(?:<script[^>]*\bsrc|<link[^>]*\bhref|\burl)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_docs_pages_serve_their_assets_themselves(
    client: httpx.AsyncClient, page: str
) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200, answer.text[:500]
    html = answer.text
    assets = [url for url in ASSET.findall(html) if url.endswith((".js", ".css"))]
    assert any(url.endswith(".js") for url in assets), html
    if page == "/docs":
        assert any(url.endswith(".css") for url in assets), html
    for url in assets:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        loaded = await client.get(url)
        assert loaded.status_code == 200, (url, loaded.status_code)
        assert len(loaded.content) > 1000, (url, loaded.content[:200])
    assert "http://" not in html and "https://" not in html, html
