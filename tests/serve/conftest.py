"""A running endpoint on loopback over a small lake, and clients that log in as the shipped
users of metadata/access.yaml (passwords from dev.secrets)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.serve.auth import LoginGuard
from lake_assets.serve.server import build_endpoint, running
from lake_assets.serve.wire import Endpoint
from lake_assets.storage.lake import Lake
from lake_assets.storage.secrets import get_secret
from tests.conftest import METADATA
from tests.serve.lake_builder import build_lake

Connect = Callable[..., psycopg.Connection]


def password(user: str) -> str:
    """The development password of a shipped user."""
    return get_secret(f"SERVE_PASSWORD_{user.split('_')[0].upper()}")


@pytest.fixture
def lake_root() -> Path:
    """The small lake, written under this test's LAKE_ROOT."""
    return build_lake(Path(os.environ["LAKE_ROOT"]))


@pytest.fixture
def endpoint(lake_root: Path) -> Iterator[Endpoint]:
    """The endpoint on a free loopback port; 3 failed logins lock a user for 30 s."""
    built = build_endpoint(Lake(), load_catalog(METADATA), port=0,
                           guard=LoginGuard(attempts=3, lockout=30), audit_interval=0.2)
    with running(built) as served:
        yield served


def dsn(endpoint: Endpoint, user: str, secret: str | None = None, **extra: str) -> str:
    """A libpq connection string for `user` (its dev password unless `secret` is given)."""
    options = {"host": "127.0.0.1", "port": str(endpoint.port), "user": user,
               "password": secret if secret is not None else password(user),
               "dbname": "lake", "connect_timeout": "10"} | extra
    return " ".join(f"{k}={v}" for k, v in options.items())


@pytest.fixture
def connect(endpoint: Endpoint) -> Iterator[Connect]:
    """Opens psycopg connections as a user; closes them after the test."""
    opened: list[psycopg.Connection] = []

    def _connect(user: str, secret: str | None = None, **extra: str) -> psycopg.Connection:
        connection = psycopg.connect(dsn(endpoint, user, secret, **extra), autocommit=True)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()
