"""Processes the stack starts: each in a process group of its own, recorded so that exactly
those groups, and nothing else, are stopped later."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Started:
    """A process the stack started: its group id is its pid (a new session)."""

    name: str
    pid: int
    created: float  # psutil's create_time: a recycled pid has another
    port: int | None
    log: str
    url: str | None = None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start(name: str, argv: Sequence[str], *, env: Mapping[str, str], log: Path,
          port: int | None = None, url: str | None = None, user: str | None = None,
          cwd: Path | None = None) -> Started:
    """Start `argv` in a new session (its own process group), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(list(argv), env=dict(env), stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, user=user, cwd=cwd)
    created = psutil.Process(process.pid).create_time()
    return Started(name, process.pid, created, port, str(log), url)


def alive(started: Started) -> bool:
    """Whether the process we started still runs (not a later process with its pid)."""
    try:
        process = psutil.Process(started.pid)
        return process.create_time() == started.created and \
            process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(*processes: Started, timeout: float = 20) -> None:
    """Stop the process groups of `processes` (TERM to all, then KILL to those left after
    `timeout`), each only while its pid is still the process we started."""
    groups = [p.pid for p in processes if alive(p)]
    for group in groups:
        _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        groups = [g for g in groups if _group_alive(g)]
        time.sleep(0.2)
    for group in groups:
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass  # the whole group ended meanwhile


def _group_alive(group: int) -> bool:
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


def wait_for_port(port: int, started: Started, *, timeout: float = 120) -> None:
    """Wait until something accepts connections on `port`; raises if `started` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(started):
            raise RuntimeError(f"{started.name} exited during start-up; see {started.log}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{started.name} did not listen on {port} in {timeout:.0f} s")


def wait_for_http(url: str, started: Started, *, timeout: float = 120) -> bytes:
    """Wait until `url` answers; returns its body. Raises if `started` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(started):
            raise RuntimeError(f"{started.name} exited during start-up; see {started.log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.3)  # not answering yet
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


def unprivileged_user() -> str | None:
    """The user to run PostgreSQL as: `postgres` when we are root (it refuses root), else us."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("postgres").pw_name


@dataclass
class StackState:
    """What `stack up` started and the environment its processes share, in `<dir>/stack.json`."""

    directory: Path
    env: dict[str, str]
    processes: list[Started]

    @property
    def file(self) -> Path:
        return self.directory / "stack.json"

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {"env": self.env, "processes": [asdict(p) for p in self.processes]}
        self.file.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: Path) -> StackState | None:
        """The recorded state, or None when nothing was started from `directory`."""
        path = directory / "stack.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(directory, data["env"], [Started(**p) for p in data["processes"]])
