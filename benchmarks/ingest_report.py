"""Numbers and tables of the ingest benchmark: per-run metrics, targets, and the rich output."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.floor import FloorResult
from benchmarks.latency import LatencyResult
from benchmarks.memory import MemoryPeaks
from benchmarks.peer import PeerResult
from benchmarks.pipeline import PipelineResult
from benchmarks.seed_slice import PEAK_FILES, PEAK_ZIPS, Slice

PEAK_HOUR_TARGET_S = 240.0  # ZipCrypto; AES is held to its floor instead (below)
FLOOR_TARGET = 0.8
PEER_TARGET = 2.0
AES_FLOOR_FACTOR = 1.25  # AES peak hour <= 1.25 x the floor's: the floor is key derivation
P95_TARGET_S = 45.0
CORES = 2  # every phase runs on two cores (local[2], two processes)


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _phase(seconds: float, data: Slice, rows: int, driver: float, workers: float) -> dict:
    return {
        "seconds": round(seconds, 1),
        "zips_per_s": _rate(data.archives, seconds),
        "data_files_per_s": _rate(data.data_files, seconds),
        "rows_per_s": _rate(rows, seconds),
        "data_files_per_s_per_core": _rate(data.data_files, seconds * CORES),
        "rows_per_s_per_core": _rate(rows, seconds * CORES),
        "cores_for_peak_hour": round(max(PEAK_FILES / max(data.data_files / seconds, 1e-9),
                                         PEAK_ZIPS / max(data.archives / seconds, 1e-9))
                                     * CORES / 3600, 2) if seconds > 0 else 0.0,
        "driver_peak_rss_mb": round(driver),
        "workers_peak_rss_mb": round(workers),
    }


def _cpu(memory: MemoryPeaks) -> dict[str, float]:
    return {"tree_cpu_s": memory.tree_cpu_s, "other_tenants_cpu_s": memory.other_cpu_s,
            "other_tenants_cpu_share": memory.other_cpu_share}


def run_metrics(
    data: Slice, floor: FloorResult, ours: PipelineResult, peer: PeerResult,
    stages: dict[str, dict], *, floor_writes: FloorResult,
) -> dict[str, Any]:
    """One encryption's metrics: ours at the top level, the floors and the peer beside it."""
    mine = _phase(ours.seconds, data, ours.rows, ours.memory.driver_mb, ours.memory.workers_mb)
    peak_hour = max(PEAK_FILES / max(mine["data_files_per_s"], 1e-9),
                    PEAK_ZIPS / max(mine["zips_per_s"], 1e-9))
    runs = ours.run_seconds
    floor_hour = max(PEAK_FILES / max(data.data_files / floor.seconds, 1e-9),
                     PEAK_ZIPS / max(data.archives / floor.seconds, 1e-9)) \
        if floor.seconds else 0.0
    return {
        **{k: v for k, v in mine.items() if k != "seconds"},
        "seconds": mine["seconds"],
        "encryption": data.encryption,
        "seconds_per_peak_hour": round(peak_hour, 1),
        "peak_hour_to_floor": round(peak_hour / floor_hour, 3) if floor_hour else 0.0,
        "ratio_to_floor": round(floor.seconds / ours.seconds, 3) if ours.seconds else 0.0,
        "ratio_to_peer": round(peer.seconds / ours.seconds, 2) if ours.seconds else 0.0,
        "jvm_peak_rss_mb": round(ours.memory.jvm_mb),
        **_cpu(ours.memory),
        "verified": ours.archives == data.archives and ours.rows == data.rows
        and ours.failed_runs == 0 and floor.rows == data.rows and peer.verified,
        "peer_verified": peer.verified,
        "slice": data.summary(),
        "pipeline": {
            "runs": ours.runs, "failed_runs": ours.failed_runs, "ticks": ours.ticks,
            "tick_seconds": round(ours.tick_seconds, 1),
            "run_seconds_total": round(sum(runs), 1),
            "run_seconds_mean": round(sum(runs) / len(runs), 2) if runs else 0.0,
            "asset_body_seconds_total": round(sum(ours.body_seconds), 1),
            "by_feed": {feed: {"runs": len(times), "seconds": round(sum(times), 1)}
                        for feed, times in sorted(ours.feed_runs.items())},
            "archives_committed": ours.archives, "rows_committed": ours.rows,
            "quarantined": ours.quarantined, "spark": stages.get("pipeline", {}),
        },
        "floor": _floor(data, floor),
        "floor_writes": _floor(data, floor_writes),
        "ratio_to_floor_writes": round(floor_writes.seconds / ours.seconds, 3)
        if ours.seconds else 0.0,
        "peer": {
            **_phase(peer.seconds, data, sum(peer.rows.values()), peer.memory.driver_mb,
                     peer.memory.workers_mb),
            **_cpu(peer.memory), "staging_seconds": round(peer.staging_seconds, 1),
            "feed_seconds": {k: round(v, 1) for k, v in peer.feed_seconds.items()},
            "rows_written": peer.rows, "rows_dropped": peer.dropped_rows,
            "verified": peer.verified, "mismatches": peer.mismatches,
            "spark": stages.get("peer", {}),
        },
    }


def _floor(data: Slice, floor: FloorResult) -> dict[str, Any]:
    return {**_phase(floor.seconds, data, floor.rows, floor.memory.driver_mb,
                     floor.memory.workers_mb), "processes": 2, **_cpu(floor.memory),
            "feed_cpu_s": {k: round(v, 1) for k, v in sorted(floor.feed_cpu_s.items())}}


def latency_metrics(result: LatencyResult) -> dict[str, Any]:
    """Latency percentiles and what the daemon ran."""
    p50, p95 = result.percentile(0.50), result.percentile(0.95)
    runs = result.run_seconds
    return {
        "p50_latency_s": None if p50 is None else round(p50, 1),
        "p95_latency_s": None if p95 is None else round(p95, 1),
        "max_latency_s": round(max(result.latencies), 1) if result.latencies else None,
        "minutes": result.minutes, "rate_per_hour": result.rate,
        "archives_landed": result.landed, "archives_committed": result.committed,
        "bronze_runs": result.runs, "failed_runs": result.failed_runs,
        "run_seconds_mean": round(sum(runs) / len(runs), 1) if runs else None,
        "silver_gold_runs": result.downstream_runs,
        "silver_gold_failed": result.downstream_failed,
        "silver_gold_cut_at_stop": result.cut_at_stop,
    }


def targets(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value and whether it is met."""
    aes = metrics.get("encryption") == "aes"
    checks = {
        "seconds_per_peak_hour": (None if aes else metrics.get("seconds_per_peak_hour"), "<=",
                                  PEAK_HOUR_TARGET_S),
        "peak_hour_to_floor": (metrics.get("peak_hour_to_floor") if aes else None, "<=",
                               AES_FLOOR_FACTOR),
        "ratio_to_floor": (metrics.get("ratio_to_floor"), ">=", FLOOR_TARGET),
        "ratio_to_peer": (metrics.get("ratio_to_peer"), ">=", PEER_TARGET),
        "p95_latency_s": (metrics.get("p95_latency_s"), "<=", P95_TARGET_S),
    }
    found = {}
    for name, (value, op, limit) in checks.items():
        if value is None:
            continue
        met = value <= limit if op == "<=" else value >= limit
        found[name] = {"value": value, "target": f"{op} {limit:g}", "met": met}
    return found


def print_report(console: Console, report: dict[str, Any]) -> None:
    """The benchmark's tables: mix, throughput per phase, targets, latency."""
    for encryption, run in report.get("runs", {}).items():
        console.print(_mix_table(encryption, run["slice"]))
        console.print(_phase_table(encryption, run))
        console.print(_feed_table(encryption, run))
        _print_peer_check(console, encryption, run["peer"])
    if "latency" in report:
        console.print(_latency_table(report["latency"]))
    console.print(_target_table(report))


def _print_peer_check(console: Console, encryption: str, peer: dict[str, Any]) -> None:
    """Whether the peer's tables hold the truth's rows, archive by archive; loud when not."""
    if peer["verified"]:
        console.print(f"peer ({encryption}): every table holds the truth's rows, per archive")
        return
    console.print(f"[bold red]peer ({encryption}) NOT VERIFIED: its tables differ from the "
                  "truth; its figures do not count[/]")
    for line in peer["mismatches"]:
        console.print(f"[red]  {line}[/]")


def _mix_table(encryption: str, data: dict[str, Any]) -> Table:
    table = Table("feed", "zips", "data files", "files/zip", "rows", "MB",
                  title=f"slice ({encryption}): {data['archives']:,} zips, "
                        f"{data['data_files']:,} data files, {data['rows']:,} rows")
    for feed, mix in data["by_feed"].items():
        table.add_row(feed, f"{mix['archives']:,}", f"{mix['data_files']:,}",
                      f"{mix['data_files'] / max(1, mix['archives']):.1f}", f"{mix['rows']:,}",
                      f"{mix['bytes'] / 1e6:,.1f}")
    table.add_row("all", f"{data['archives']:,}", f"{data['data_files']:,}",
                  f"{data['data_files_per_zip']:.1f}", f"{data['rows']:,}",
                  f"{data['megabytes']:,.1f}", style="bold")
    return table


def _phase_table(encryption: str, run: dict[str, Any]) -> Table:
    table = Table("phase", "seconds", "runs s", "zips/s", "data files/s", "rows/s",
                  "files/s/core", "rows/s/core", "cores for peak hour",
                  "s / peak hour", "driver peak MB", "workers peak MB", "others' CPU",
                  title=f"throughput ({encryption}): the median of the runs counted; others' CPU "
                        "= share of the machine used by other tenants meanwhile")
    phases = {"floor": ("floor (2 procs, no writes)", run["floor"]),
              "floor_writes": ("floor + writes (no commits)", run["floor_writes"]),
              "ours": ("ours (sensors + runs)", run),
              "peer": ("peer (unzip + spark.read)", run["peer"])}
    for key, (name, phase) in phases.items():
        counted = [a["seconds"] for a in run.get("attempts", {}).get(key, []) if a["counted"]]
        hour = max(PEAK_FILES / max(phase["data_files_per_s"], 1e-9),
                   PEAK_ZIPS / max(phase["zips_per_s"], 1e-9))
        table.add_row(name, f"{phase['seconds']:,.1f}", " ".join(f"{x:.1f}" for x in counted),
                      f"{phase['zips_per_s']:,.1f}",
                      f"{phase['data_files_per_s']:,.0f}", f"{phase['rows_per_s']:,.0f}",
                      f"{phase['data_files_per_s_per_core']:,.0f}",
                      f"{phase['rows_per_s_per_core']:,.0f}",
                      f"{phase['cores_for_peak_hour']:,.2f}",
                      f"{hour:,.0f}", f"{phase['driver_peak_rss_mb']:,}",
                      f"{phase['workers_peak_rss_mb']:,}",
                      f"{phase.get('other_tenants_cpu_share', 0.0):.0%}")
    return table


def _feed_table(encryption: str, run: dict[str, Any]) -> Table:
    """Seconds per feed: floor CPU over two processes, our runs, the peer's read and write."""
    table = Table("feed", "floor CPU s / 2", "ours: runs", "ours: run s", "ours / floor",
                  "peer read+write s", title=f"by feed ({encryption}); peer staging "
                  f"{run['peer']['staging_seconds']:,.1f} s is not split by feed")
    floor, ours = run["floor"]["feed_cpu_s"], run["pipeline"]["by_feed"]
    for feed in sorted(set(floor) | set(ours)):
        half = floor.get(feed, 0.0) / 2
        mine = ours.get(feed, {"runs": 0, "seconds": 0.0})
        table.add_row(feed, f"{half:,.1f}", f"{mine['runs']:,}", f"{mine['seconds']:,.1f}",
                      f"{mine['seconds'] / half:,.1f}x" if half else "",
                      f"{run['peer']['feed_seconds'].get(feed, 0.0):,.1f}")
    return table


def _latency_table(latency: dict[str, Any]) -> Table:
    table = Table("measure", "value", title="latency: landing mtime → manifest committed_at")
    for key, value in latency.items():
        table.add_row(key, "" if value is None else str(value))
    return table


def _target_table(report: dict[str, Any]) -> Table:
    table = Table("run", "target", "measured", "goal", "met", title="targets")
    sources = {name: run["targets"] for name, run in report.get("runs", {}).items()}
    if "latency" in report:
        sources["latency"] = targets(report["latency"])
    for name, found in sources.items():
        for target, check in found.items():
            mark = "[green]met[/]" if check["met"] else "[red]not met[/]"
            table.add_row(name, target, str(check["value"]), check["target"], mark)
    return table
