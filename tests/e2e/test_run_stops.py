"""`lakehouse run` (what `make run` execs): up with links on the terminal, logs in files, and a
SIGTERM stops every process it started (dagster dev's webserver, daemon and code server, Spark
Connect, the SQL endpoint, the alert inbox) within the grace period, leaving none behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import DEV_SECRETS, METADATA, PROJECT_ROOT
from tests.spark.servers import free_port

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_sigterm_stops_the_whole_stack(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ, DAGSTER_HOME=str(home), LAKE_ROOT=str(tmp_path / "lake"),
               LAKE_SECRETS_FILE=str(DEV_SECRETS), LAKE_METADATA=str(METADATA),
               SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env.pop("SPARK_REMOTE", None)
    ports = [str(free_port()) for _ in range(5)]
    command = [str(Path(sys.executable).with_name("lakehouse")), "run", "--drip-rate", "0",
               "--ui-port", ports[0], "--connect-port", ports[1], "--serve-port", ports[2],
               "--smtp-port", ports[3], "--inbox-port", ports[4]]
    terminal = tmp_path / "terminal.txt"
    with terminal.open("wb") as out:
        run = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 420
        while "Ctrl-C stops everything" not in terminal.read_text() and run.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(1)
        text = terminal.read_text()
        assert "Ctrl-C stops everything" in text, text[-3000:]
        started = psutil.Process(run.pid).children(recursive=True)
        names = " ".join(_command(p) for p in started)
        assert "dagster" in names and "spark-server" in names and "inbox" in names
        assert len(text.splitlines()) < 15  # links, not the processes' logs
        assert (home / "lakehouse-logs" / "dagster.log").stat().st_size > 0

        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 0, terminal.read_text()[-3000:]
        _, alive = psutil.wait_procs(started, timeout=5)
        assert [_command(p) for p in alive] == []
    finally:
        if run.poll() is None:  # its children get SIGTERM from the kernel when it dies
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie its parent has not reaped yet
        return ""
