"""Ingest on the production shape's compute against local mode, on the same 2 cores.

    python -m benchmarks.stack_ingest [--scale 0.1] [--repeat 1] [--json FILE] [--workdir DIR]

Lands `benchmarks.ingest`'s ZipCrypto slice (`--scale` of a peak hour) once, then runs our
pipeline (feed sensors and their runs, as `benchmarks.ingest` times "ours") on Spark
`local[2]` and on a standalone cluster of 2 workers with 1 core each (the shape `lakehouse
stack up` starts), each after an untimed warm-up pass. The modes take turns, `--repeat`
rounds, and the median is kept. Landing and lake are local folders in both, so the difference
is the cluster's extra hops (driver to executors over RPC, executors in other JVMs).
Goal: the cluster reaches 0.8 of local mode's throughput.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.pipeline import run_pipeline
from benchmarks.seed_slice import build_slice, build_warmup
from lake_assets.catalog.loader import load_catalog, metadata_root
from lake_assets.stack import stop
from lake_assets.stack.services import start_spark_cluster
from lake_assets.storage.spark import build_session

app = typer.Typer(add_completion=False)


def _measure(master: str, *, catalog: Any, landing: Path, warmup: Path, base: Path
             ) -> dict[str, Any]:
    os.environ["SPARK_MASTER"] = master
    spark = build_session(master=master, app_name=f"stack-ingest-{master.split(':')[0]}",
                          ui_enabled=False)
    try:
        shutil.rmtree(base / "warm-lake", ignore_errors=True)
        run_pipeline(catalog, lake=base / "warm-lake", landing=warmup)
        shutil.rmtree(base / "lake", ignore_errors=True)
        found = run_pipeline(catalog, lake=base / "lake", landing=landing)
    finally:
        spark.stop()
    return {"seconds": round(found.seconds, 1), "archives": found.archives, "rows": found.rows,
            "runs": found.runs, "failed_runs": found.failed_runs,
            "archives_per_s": round(found.archives / found.seconds, 2),
            "rows_per_s": round(found.rows / found.seconds)}


@app.command()
def main(
    scale: Annotated[float, typer.Option(help="share of a peak hour")] = 0.1,
    repeat: Annotated[int, typer.Option(help="rounds; the median is kept")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    workdir: Annotated[Path | None, typer.Option(help="reuse a landed slice")] = None,
) -> None:
    """Print local mode against the 2 x 1-core cluster, and write JSON."""
    root = workdir or Path(tempfile.mkdtemp(prefix="stack-ingest-"))
    json_out = json_out or Path(tempfile.gettempdir()) / "stack-ingest-benchmark.json"
    os.environ.setdefault("LAKE_SECRETS_FILE", str(Path(__file__).parents[1] / "dev.secrets"))
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    catalog = load_catalog(metadata_root())
    data = build_slice(landing=root / "landing", scale=scale, encryption="zipcrypto", seed=7)
    warmup = build_warmup(landing=root / "warmup" / "landing", seed=1007)
    cluster = start_spark_cluster(root / "cluster", dict(os.environ), workers=2)
    results: dict[str, list[dict[str, Any]]] = {"local[2]": [], "cluster 2x1": []}
    try:
        for _ in range(repeat):
            for mode, master in (("local[2]", "local[2]"), ("cluster 2x1", cluster[0].url)):
                results[mode].append(_measure(master or "", catalog=catalog,
                                              landing=data.landing, warmup=warmup,
                                              base=root / mode.split("[")[0].split()[0]))
    finally:
        stop(*cluster)
    kept = {mode: sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            for mode, runs in results.items()}
    ratio = round(kept["cluster 2x1"]["rows_per_s"] / kept["local[2]"]["rows_per_s"], 2)
    report = {"scale": scale, "encryption": "zipcrypto", "archives": data.archives,
              "data_files": data.data_files, "modes": kept, "attempts": results,
              "cluster_to_local": ratio,
              "median_seconds": {m: statistics.median(r["seconds"] for r in runs)
                                 for m, runs in results.items()}}
    json_out.write_text(json.dumps(report, indent=2))
    print(f"{'mode':<12} {'seconds':>8} {'archives/s':>11} {'rows/s':>9} {'runs':>5} "
          f"{'failed':>6}")
    for mode, r in kept.items():
        print(f"{mode:<12} {r['seconds']:>8} {r['archives_per_s']:>11} {r['rows_per_s']:>9} "
              f"{r['runs']:>5} {r['failed_runs']:>6}")
    print(f"cluster / local throughput: {ratio} (goal >= 0.8); JSON: {json_out}")


if __name__ == "__main__":
    app()
