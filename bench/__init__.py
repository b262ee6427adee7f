"""Benchmarks: `script/bench NAME` runs `python -m bench.NAME`."""
