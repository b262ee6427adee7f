"""Flags made from the configs' fields: each command line gives the config
its flags say, in the field's own unit, with the stack's prefixes."""

from __future__ import annotations

import pytest

from wyoming_rtvoice.__main__ import build_parser
from wyoming_rtvoice.config import from_flags
from wyoming_rtvoice.converse import DEMO_HOUSE, ConverseConfig
from wyoming_rtvoice.handle.config import HandleConfig
from wyoming_rtvoice.house.safety import CONFIRM_DOMAINS
from wyoming_rtvoice.satellite.config import SatelliteConfig
from wyoming_rtvoice.stack import PORTS, StackConfig
from wyoming_rtvoice.turn import TurnRule
from wyoming_rtvoice.wake.config import WakeConfig


def test_defaults_are_the_fields_own() -> None:
    args = build_parser().parse_args(["stack"])
    config = from_flags(StackConfig, args)
    assert config.rule == TurnRule() and config.handle == HandleConfig()
    assert config.wake == WakeConfig() and config.ports == PORTS
    assert config.reply_ahead
    converse = from_flags(ConverseConfig, build_parser().parse_args(["converse", "a"]))
    assert converse.house.entities == str(DEMO_HOUSE) and converse.wav == "a"


def test_units_prefixes_and_conversions() -> None:
    argv = ["stack", "--end-silence-ms", "300", "--ack-after-ms", "250"]
    argv += ["--tts-voice", "v.onnx", "--asr-max-seconds", "8", "--wake-model", "a"]
    argv += ["--wake-model", "b", "--no-wake-second-opinion", "--handle-port", "1"]
    argv += ["--confirm-domains", "switch", "--no-reply-ahead", "--tts-budget-ms", "9"]
    config = from_flags(StackConfig, build_parser().parse_args(argv))
    assert config.rule.silence_s == pytest.approx(0.3)
    assert config.handle.policy.ack_after_s == pytest.approx(0.25)
    assert (config.tts.voice, config.asr.max_seconds) == ("v.onnx", 8.0)
    assert config.wake.models == ("a", "b") and not config.wake.second_opinion
    assert config.ports == {**PORTS, "handle": 1} and not config.reply_ahead
    assert config.handle.confirm_domains == CONFIRM_DOMAINS | {"switch"}
    assert config.budgets.tts == 9.0


def test_the_satellite_needs_one_microphone() -> None:
    parser = build_parser()
    for argv in (["satellite"], ["satellite", "--mic-wav", "a", "--mic-command", "b"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    args = parser.parse_args(["satellite", "--mic-wav", "a", "--snd-rate", "16000"])
    config = from_flags(SatelliteConfig, args)
    assert (config.mic_wav, config.mic_command, config.snd_rate) == ("a", None, 16000)
