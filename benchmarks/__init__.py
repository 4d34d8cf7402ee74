"""Benchmarks: throughput, latency, memory and storage, each runnable with python -m."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
