"""`lakehouse run`: the development stack of `make run`, in one foreground process.

It starts, each in a process group of its own and logging to a file under $DAGSTER_HOME:
the Spark Connect server that runs share, the live simulator (the dripper), the SQL endpoint,
the local alert inbox, and `dagster dev` (webserver, daemon and code server) with alerts routed
to the inbox. The terminal shows links and a progress line every 30 s, not the processes' logs.

SIGTERM or Ctrl-C stops every process it started: SIGTERM to each group, SIGKILL to what is
still alive after `STOP_GRACE_S`. Should the supervisor itself be killed, each child it started
gets SIGTERM from the kernel (PR_SET_PDEATHSIG). A process that dies on its own stops the rest,
with its log named, so a half-started stack never looks healthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lake_assets.errors import SparkConfigError
from lake_assets.storage.spark import wait_for_port

STOP_GRACE_S = 30.0
PROGRESS_EVERY_S = 30.0
console = Console(highlight=False, soft_wrap=True)  # links stay on one line


@dataclass
class Child:
    """A started process: its name, log and Popen."""

    name: str
    log: Path
    process: subprocess.Popen


class Stack:
    """Processes started in their own process groups, stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[Child] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> Child:
        """Start `command` with its output in `<logs>/<name>.log`."""
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(command, env=dict(env), stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=_end_with_parent)
        child = Child(name, log, process)
        self.children.append(child)
        return child

    def dead(self) -> Child | None:
        """A child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        """SIGTERM every group, newest first; SIGKILL what outlives the grace period."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                console.print(f"{child.name} did not stop in {STOP_GRACE_S:.0f} s; killing it")
        for child in self.children:
            _signal_group(child.process, signal.SIGKILL)  # stragglers of the group too
            child.process.wait()


def _end_with_parent() -> None:
    """In the child: get SIGTERM when this supervisor dies, even by SIGKILL (Linux), so no
    process of the stack outlives it. The ctypes call is Linux's prctl(PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def register(app: typer.Typer) -> None:
    """Add `lakehouse run` to the command line."""
    app.command("run")(run)


def run(
    ui_port: Annotated[int, typer.Option(help="Dagster UI port")] = 3000,
    connect_port: Annotated[int, typer.Option(help="Spark Connect port")] = 15002,
    serve_port: Annotated[int, typer.Option(help="SQL endpoint port")] = 5433,
    smtp_port: Annotated[int, typer.Option(help="alert inbox SMTP port")] = 8025,
    inbox_port: Annotated[int, typer.Option(help="alert inbox HTTP port")] = 8765,
    drip_rate: Annotated[int, typer.Option(help="archives per hour the dripper lands (0: none)")
                         ] = 240,
) -> None:
    """Run the development stack in the foreground until SIGTERM or Ctrl-C (`make run`)."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    lake_root = os.environ.get("LAKE_ROOT") or ".lake"
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONUNBUFFERED="1")
    # Not $DAGSTER_HOME/logs: Dagster queues the files there for its telemetry upload.
    stack = Stack(home / "lakehouse-logs")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
    lakehouse = [str(bin_dir / "lakehouse")]
    try:
        stack.start("spark-connect", [*lakehouse, "spark-server", "--port", str(connect_port)],
                    env)
        stack.start("inbox", [*lakehouse, "inbox", "--mailbox", str(home / "inbox.jsonl"),
                              "--smtp-port", str(smtp_port), "--http-port", str(inbox_port)], env)
        stack.start("serve", [*lakehouse, "serve", "--port", str(serve_port)], env)
        if drip_rate:
            stack.start("dripper", [*lakehouse, "simulate", "--facilities", "10", "--rate",
                                    str(drip_rate), "--size-scale", "0.05", "--live", "--quiet",
                                    "--truth", f"{lake_root}/_live_truth.jsonl"], env)
        console.print(f"Logs in {stack.logs}; starting Spark Connect on "
                      f"sc://127.0.0.1:{connect_port} and Dagster ...")
        # Dagster starts beside Spark Connect (each takes 20-30 s): a run that starts first
        # waits for the server (`storage.spark`).
        # Imports Dagster (1-3 s), so only once the other services are starting.
        from lake_assets.instance_storage import DAGSTER_PROCESS_ENV

        dagster_env = DAGSTER_PROCESS_ENV | env | {
            "SPARK_REMOTE": f"sc://127.0.0.1:{connect_port}",
            # Alerts of the demo teams arrive in the local inbox instead of failing to leave.
            "LAKE_SMTP_HOST": "127.0.0.1", "LAKE_SMTP_PORT": str(smtp_port),
            "LAKE_PAGERDUTY_URL": f"http://127.0.0.1:{inbox_port}/pagerduty",
            # A small lake: silver and gold follow bronze within a minute, not five.
            "LAKE_AUTOMATION_INTERVAL_S": os.environ.get("LAKE_AUTOMATION_INTERVAL_S", "15"),
        }
        stack.start("dagster", [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml",
                                "-h", "127.0.0.1", "-p", str(ui_port)], dagster_env)
        _wait_up(connect_port, stack, stopping)
        _wait_up(ui_port, stack, stopping)
        console.print(f"Dagster UI     http://127.0.0.1:{ui_port}  (sensors on; archives drip "
                      "in every few seconds)")
        console.print(f"SQL endpoint   psql -h 127.0.0.1 -p {serve_port} -U ana lake")
        console.print(f"Alert inbox    http://127.0.0.1:{inbox_port}")
        console.print("Ctrl-C stops everything.")
        _watch(stack, stopping, [Path(lake_root), Path(os.environ.get("LAKE_BRONZE_ROOT")
                                                        or lake_root)])
    finally:
        console.print("stopping ...")
        stack.stop()
        console.print("stopped")


def _wait_up(port: int, stack: Stack, stopping: list[int]) -> None:
    """Wait until `port` answers, failing fast if a process died or a stop was asked."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        _check(stack, stopping)
        try:
            wait_for_port(port, timeout=1)
            return
        except SparkConfigError:
            continue
    console.print(f"nothing answers on port {port} after 300 s; see {stack.logs}", style="red")
    raise typer.Exit(1)


def _check(stack: Stack, stopping: list[int]) -> None:
    if stopping:
        raise typer.Exit(0)
    dead = stack.dead()
    if dead is not None:
        console.print(f"{dead.name} exited with {dead.process.returncode}; see {dead.log}",
                      style="red")
        raise typer.Exit(1)


def _watch(stack: Stack, stopping: list[int], roots: list[Path]) -> None:
    """A progress line every PROGRESS_EVERY_S until a stop is asked or a process dies."""
    began = last = time.monotonic()
    while True:
        _check(stack, stopping)
        time.sleep(0.5)
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            console.print(f"{time.strftime('%H:%M:%S')}  {_progress(roots)}  "
                          f"(up {_minutes(last - began)})", style="dim")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _progress(roots: list[Path]) -> str:
    """Tables written per layer, from the lake's folders (cheap; no table is opened)."""
    counts = {layer: len({p for root in roots for p in (root / layer).glob("**/_delta_log")})
              for layer in ("bronze", "silver", "gold")}
    return "tables written: " + ", ".join(f"{n} {layer}" for layer, n in counts.items())
