"""Latency-first local voice assistant for Home Assistant, as Wyoming servers."""

__version__ = "0.1.0"
