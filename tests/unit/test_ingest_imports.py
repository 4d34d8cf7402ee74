"""The ingest core, which Spark executors import to run a batch's tasks, loads without Dagster."""

from __future__ import annotations

import subprocess
import sys


def test_executor_modules_do_not_import_dagster() -> None:
    probe = ("import sys, lake_assets.ingest.batch; "
             "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"
