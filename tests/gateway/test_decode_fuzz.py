"""Property: no input makes the decoder raise, and every message is accounted for.

Whatever arrives on the broker (any topic, any bytes, any JSON shape), the decoder must
either accept it into the batch or quarantine it with a reason: never crash, never drop
a message without a trace.
"""

from __future__ import annotations

import math

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ingest.decode import MessageDecoder
from gateway.registry import Registry

NOW = 1_795_478_400.0
DEVICES = ["DC1", "M-TOTAL", "CW1", "GHOST", ""]
ENTERPRISES = ["E370829001", "E320583002", "NOPE"]
KINDS = ["telemetry", "meter", "event", "status", "other"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["2026-11-24T08:00:00+08:00", "2026-11-24T07:59:59.5Z", "soon"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["ts", "values", "records", "v", "q", "dp", "p_kw", "co", "type",
                         "online", "x"]), inner, max_size=5),
    max_leaves=20,
)
topics = st.one_of(
    st.builds(lambda e, d, k: f"rw/v1/{e}/{d}/{k}", st.sampled_from(ENTERPRISES),
              st.sampled_from(DEVICES), st.sampled_from(KINDS)),
    st.text(max_size=40),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(topic=topics, body=json_values, raw=st.binary(max_size=64), use_raw=st.booleans())
def test_any_message_is_accepted_or_quarantined(
    small_registry: Registry, topic: str, body: object, raw: bytes, use_raw: bool
) -> None:
    decoder = MessageDecoder(small_registry.index)
    payload = raw if use_raw else orjson.dumps(body)
    latest = decoder.feed(topic, payload, NOW)
    decoded = decoder.take()
    assert decoded.messages == 1
    accepted = len(decoded.samples) + len(decoded.events) + len(decoded.statuses)
    assert accepted or decoded.rejections, "a message vanished without a trace"
    assert latest == -math.inf or math.isfinite(latest)
    assert all(math.isfinite(t) for t in decoded.samples.ts.tolist())
