"""`lakehouse sql` finds the Spark Connect server that `make run` started, and only then."""

from __future__ import annotations

import socket

from lake_assets.storage.spark import local_connect_server


def test_a_listening_local_server_is_used_unless_spark_is_configured() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert local_connect_server({}, port=port) == f"sc://127.0.0.1:{port}"
        assert local_connect_server({"SPARK_MASTER": "local[2]"}, port=port) is None
        assert local_connect_server({"SPARK_REMOTE": "sc://elsewhere:1"}, port=port) is None
    assert local_connect_server({}, port=port) is None  # nothing answers any more
