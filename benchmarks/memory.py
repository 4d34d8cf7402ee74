"""Peak resident memory and CPU of this process tree, sampled in a thread while a phase runs.

The driver is this Python process plus the Spark JVM it started; workers are every other
descendant (Spark's Python workers, or the floor's process pool). CPU is split between the tree
and every other process on the machine: on a shared machine the second figure says how much the
other tenants took. Both are lower bounds, since a process living between two samples is missed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import psutil

MB = 1024 * 1024
Key = tuple[int, float]  # pid and start time: a pid can be reused


@dataclass
class MemoryPeaks:
    """Peak RSS in MB seen during a phase, and CPU seconds used in and outside the tree."""

    driver_mb: float = 0.0
    jvm_mb: float = 0.0
    workers_mb: float = 0.0
    samples: int = 0
    tree_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    other_cpu_share: float = 0.0


@dataclass
class MemorySampler:
    """Context manager sampling every `interval` seconds; `peaks` holds the results."""

    interval: float = 0.25
    include_jvm: bool = True  # False when the JVM idles through the phase (the floor)
    peaks: MemoryPeaks = field(default_factory=MemoryPeaks)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _first: dict[Key, float] = field(default_factory=dict)
    _last: dict[Key, float] = field(default_factory=dict)
    _tree: set[Key] = field(default_factory=set)
    _began: float = 0.0

    def __enter__(self) -> MemorySampler:
        self._began = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        used = {key: self._last[key] - first for key, first in self._first.items()}
        tree = sum(seconds for key, seconds in used.items() if key in self._tree)
        other = sum(seconds for key, seconds in used.items() if key not in self._tree)
        capacity = (time.monotonic() - self._began) * (os.cpu_count() or 1)
        self.peaks.tree_cpu_s = round(tree, 1)
        self.peaks.other_cpu_s = round(other, 1)
        self.peaks.other_cpu_share = round(other / capacity, 3) if capacity else 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Take one sample: RSS of the tree, CPU of every process on the machine."""
        root = psutil.Process()
        tree = {root.pid: root}
        for child in root.children(recursive=True):
            tree[child.pid] = child
        python = jvm = workers = 0
        for process in psutil.process_iter():
            rss = self._account(process, process.pid in tree)
            if process.pid == root.pid:
                python = rss
            elif process.pid in tree and is_jvm(process):
                jvm += rss
            elif process.pid in tree:
                workers += rss
        peaks = self.peaks
        peaks.driver_mb = max(peaks.driver_mb, (python + jvm * self.include_jvm) / MB)
        peaks.jvm_mb = max(peaks.jvm_mb, jvm / MB)
        peaks.workers_mb = max(peaks.workers_mb, workers / MB)
        peaks.samples += 1

    def _account(self, process: psutil.Process, mine: bool) -> int:
        """Note the CPU time of `process`; returns its RSS when it is in the tree."""
        try:
            with process.oneshot():
                times = process.cpu_times()
                key = (process.pid, process.create_time())
                rss = process.memory_info().rss if mine else 0
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return 0
        used = times.user + times.system
        # Processes alive when the phase began count from then; newer ones from their start.
        self._first.setdefault(key, used if self.peaks.samples == 0 else 0.0)
        self._last[key] = used
        if mine:
            self._tree.add(key)
        return rss


def is_jvm(process: psutil.Process) -> bool:
    """Whether `process` is a JVM (a Spark driver or executor); False once it has gone."""
    try:
        return process.name() == "java"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_for_quiet(*, max_seconds: float, busy_below: float = 0.15, window: float = 5.0) -> float:
    """Wait (up to `max_seconds`) for a `window` in which the CPUs are busy less than
    `busy_below` of the time; returns the last busy share seen. This tree should be idle."""
    deadline = time.monotonic() + max_seconds
    while True:
        busy = psutil.cpu_percent(interval=window) / 100
        if busy < busy_below or time.monotonic() >= deadline:
            return round(busy, 3)
