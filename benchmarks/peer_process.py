"""Run the peer in a Python process (and JVM) of its own, as its own job would run.

A separate process keeps the peer's memory and CPU out of our process tree's figures and ours
out of its; its Spark session has the project's defaults, as ours does (1 GB driver heap).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import PROJECT_ROOT, spark_stages
from benchmarks.memory import MemoryPeaks
from benchmarks.peer import PeerResult, run_peer
from benchmarks.seed_slice import Slice, landed_slice
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.storage.spark import build_session


def run_peer_process(data: Slice, *, workdir: Path) -> tuple[PeerResult, dict[str, Any]]:
    """The peer's result and Spark stage summary, measured in a child process.

    Raises RuntimeError with the child's exit code when it fails (its log is in `workdir`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out, log = workdir / "peer.json", workdir / "peer.log"
    command = [sys.executable, "-m", "benchmarks.peer_process", "--landing", str(data.landing),
               "--encryption", data.encryption, "--workdir", str(workdir), "--json", str(out)]
    with open(log, "wb") as handle:
        done = subprocess.run(command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peer process exited with {done.returncode}; see {log}")
    found = json.loads(out.read_text())
    memory = MemoryPeaks(**found["result"].pop("memory"))
    return PeerResult(**found["result"], memory=memory), found["stages"]


def main() -> None:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--encryption", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    data = landed_slice(args.landing, args.landing.parent / "truth", args.encryption)
    spark = build_session(master="local[2]", conf=spark_stages.UI_CONF,
                          app_name="ingest-benchmark-peer")
    try:
        mark = spark_stages.mark(spark)
        result = run_peer(spark, load_catalog(metadata_root()), data, workdir=args.workdir)
        stages = spark_stages.stage_summary(spark, mark)
    finally:
        spark.stop()
    args.json.write_text(json.dumps({"result": asdict(result), "stages": stages}))


if __name__ == "__main__":
    main()
