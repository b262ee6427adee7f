"""Constants of the rtvoice integration."""

from datetime import timedelta
import logging

DOMAIN = "rtvoice"
LOGGER = logging.getLogger(__package__)

DEFAULT_PORT = 10580  # the stack's HTTP API
STATS_INTERVAL = timedelta(seconds=15)
NAME_SYNC_COOLDOWN = 1.0  # seconds: registry edits come in bursts

# Stages whose p50/p95 become sensors (see the stack's /api/stats).
STAGES = ("asr", "intent", "llm", "tts")
