"""Benchmarks: throughput, latency, memory and storage, each runnable with python -m."""
