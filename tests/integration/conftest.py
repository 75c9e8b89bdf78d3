"""Fixtures the integration tests share (servers, topics and databases come from
``local_infra.pytest_plugin``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crm_backbone.eventstore import EventStoreConfig


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStoreConfig]:
    """An event store of this test's own: run once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield EventStoreConfig(sqlite_path=tmp_path / "customers.sqlite")
    else:
        yield EventStoreConfig(postgres_dsn=request.getfixturevalue("postgres_database"))
