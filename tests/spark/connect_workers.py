"""Which Connect session a process joins, and which Python workers run its tasks.

    SPARK_REMOTE=sc://127.0.0.1:PORT python tests/spark/connect_workers.py [stop]

Prints JSON: the session id, and how many of the workers that ran two tasks were started for
this process. With `stop` the process then stops its session, as a client that releases it
would.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pyarrow as pa

from lake_assets.storage.spark import build_session

BEGAN = time.time()


def _workers(began: float) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker = psutil.Process()
        for batch in batches:
            yield pa.RecordBatch.from_pydict({"pid": [worker.pid] * batch.num_rows,
                                              "fresh": [worker.create_time() >= began] *
                                              batch.num_rows})
    return run


def main(*args: str) -> None:
    spark = build_session()
    rows = (spark.range(0, 2, numPartitions=2)
            .mapInArrow(_workers(BEGAN), "pid long, fresh boolean").collect())
    fresh = {r.pid for r in rows if r.fresh}
    print(json.dumps({"session": spark.session_id, "fresh_workers": len(fresh)}))
    if "stop" in args:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
