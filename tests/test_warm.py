"""One warm HTTPS connection to the Messages API: ten questions 20 s apart
use one connection, where the SDK's own pool (idle connections dropped
after 5 s) makes a TLS handshake for each. Time is scaled down: every
duration (the gap, the pool's keep-alive, the keep-warm interval, the API's
idle timeout) is multiplied by SCALE; `script/bench handle --warm` runs the
real 20 s. The fake API counts TLS handshakes (a certificate authority made
for the test)."""

from __future__ import annotations

from bench.handle import connections
from wyoming_rtvoice.handle.llm import LlmSettings

SCALE = 0.005
GAP_S = 20 * SCALE
API_IDLE_S = 400 * SCALE  # the API's edge closes idle connections then
OURS = LlmSettings(
    keep_alive_s=LlmSettings.keep_alive_s * SCALE,
    keep_warm_s=LlmSettings.keep_warm_s * SCALE,
)
SDK_DEFAULT = LlmSettings(keep_alive_s=5 * SCALE, keep_warm_s=0)


async def test_ten_questions_20_s_apart_use_one_connection() -> None:
    handshakes, _ = await connections(10, GAP_S, OURS, API_IDLE_S)
    assert handshakes == 1
    baseline, pings = await connections(10, GAP_S, SDK_DEFAULT, API_IDLE_S)
    assert baseline == 1 + 10 and pings == 1  # start-up, then one per question


async def test_keep_warm_outlives_the_apis_idle_timeout() -> None:
    # Questions further apart than the API keeps an idle connection.
    settings = LlmSettings(keep_alive_s=10, keep_warm_s=0.1)
    handshakes, pings = await connections(4, 0.4, settings, idle_close_s=0.3)
    assert handshakes == 1 and pings >= 4
    cold = LlmSettings(keep_alive_s=10, keep_warm_s=0)
    assert (await connections(4, 0.4, cold, idle_close_s=0.3))[0] == 1 + 4
