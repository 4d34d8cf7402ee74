"""Which Connect session a process joins, and which Python workers run its tasks.

    SPARK_REMOTE=sc://127.0.0.1:PORT python tests/spark/connect_workers.py [stop]

Prints JSON: the session id and the process ids of the workers that ran two tasks. With `stop`
the process then stops its session, as a client that releases it would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pyarrow as pa

from resources.spark import build_session


def _pids(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield pa.RecordBatch.from_pydict({"pid": [os.getpid()] * batch.num_rows})


def main(*args: str) -> None:
    spark = build_session()
    rows = spark.range(0, 2, numPartitions=2).mapInArrow(_pids, "pid long").collect()
    print(json.dumps({"session": spark.session_id, "pids": sorted({r.pid for r in rows})}))
    if "stop" in args:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
