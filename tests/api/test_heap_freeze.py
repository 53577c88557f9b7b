"""The served API freezes its start-up heap; apps built for tests and tools do not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from dunwell.heap import freeze_startup_heap
from dunwell.settings import Settings
from ledger.migrate import upgrade


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(url)
    return Settings(env="test", database_url=url, temporal_address="127.0.0.1:1")


def test_freezing_exempts_what_lives_and_leaves_garbage_collected(unfrozen: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 0
    assert gone() is None, "collected, not frozen"


def test_the_served_app_freezes_its_heap_at_start(unfrozen: None, settings: Settings) -> None:
    with TestClient(create_app(settings, freeze_heap=True)) as client:
        assert gc.get_freeze_count() > 0
        assert client.get("/healthz").status_code == 200


def test_an_app_built_for_tests_does_not(unfrozen: None, settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert gc.get_freeze_count() == 0
        assert client.get("/healthz").status_code == 200
