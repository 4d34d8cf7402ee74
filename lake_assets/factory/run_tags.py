"""The run tags through which sensors, bronze runs and the recovery of failed batches speak."""

from __future__ import annotations

FEED_TAG = "lake/feed"  # dagster.yaml runs one run per value at a time
BATCH_TAG = "lake/batch"  # the batch id: every attempt of a batch loads the same archives
ATTEMPT_TAG = "lake/attempt"  # 1 for the first run of a batch, 2 for its first retry...
REPLAY_TAG = "lake/replay"  # on replays of dead letters: when the replay was asked (epoch s)
# The recovery sensor retries bronze batches itself (with backoff, then dead-letters them), so
# Dagster's run retries stay off for bronze runs; silver and gold runs keep them.
NO_DAGSTER_RETRIES = {"dagster/max_retries": "0"}
MAX_RUNTIME_TAG = "dagster/max_runtime_seconds"  # run monitoring stops a run past it
