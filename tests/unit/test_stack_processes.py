"""The stack's process bookkeeping: it stops the process groups it recorded, whole, and never
a process that merely inherited a recorded pid."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import psutil

from lake_assets.stack import StackState, alive, down, status, stop
from lake_assets.stack.processes import start

SLEEPER = [sys.executable, "-c",
           "import subprocess, sys, time; "
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
           "time.sleep(60)"]


def _group(pid: int) -> list[int]:
    return [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_stop_ends_the_whole_group_it_started(tmp_path: Path) -> None:
    started = start("sleeper", SLEEPER, env={}, log=tmp_path / "sleeper.log")
    assert alive(started)
    stop(started, timeout=10)
    assert not alive(started)
    assert [p for p in _group(started.pid)
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
    try:
        created = psutil.Process(bystander.pid).create_time()
        impostor = dataclasses.replace(
            start("x", [sys.executable, "-c", "pass"], env={}, log=tmp_path / "x.log"),
            pid=bystander.pid, created=created - 100)
        assert not alive(impostor)
        stop(impostor, timeout=1)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_down_stops_what_the_state_records_and_forgets_it(tmp_path: Path) -> None:
    processes = [start(f"p{i}", SLEEPER, env={}, log=tmp_path / f"p{i}.log") for i in range(2)]
    StackState(tmp_path, {"LAKE_ROOT": "s3://lake"}, processes).save()
    assert [running for _, running in status(tmp_path)] == [True, True]
    assert [p.name for p in down(tmp_path)] == ["p0", "p1"]
    assert not any(alive(p) for p in processes)
    assert status(tmp_path) == [] and StackState.load(tmp_path) is None
