"""Constants of the rtvoice integration."""

import logging
from datetime import timedelta

DOMAIN = "rtvoice"
LOGGER = logging.getLogger(__package__)

DEFAULT_PORT = 10580  # the stack's HTTP API
STATS_INTERVAL = timedelta(seconds=15)
NAME_SYNC_COOLDOWN = 1.0  # seconds: registry edits come in bursts

# Stages whose p50/p95 become sensors (see the stack's /api/stats).
STAGES = ("asr", "intent", "llm", "tts")
