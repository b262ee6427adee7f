"""Benchmarks: `script/bench NAME` runs `python -m wyoming_rtvoice.bench.NAME`."""
