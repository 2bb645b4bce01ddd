"""One real ``taskcell serve`` for the client tests of a module (with keys for alice, bob and
an admin), and a client for each of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from live_server import ADMIN, ALICE, BOB, LiveServer, live_server
from taskcell.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("client-serve")) as running:
        yield running


@pytest.fixture
def alice(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, ALICE) as client:
        yield client


@pytest.fixture
def bob(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, BOB) as client:
        yield client


@pytest.fixture
def admin(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, ADMIN) as client:
        yield client
