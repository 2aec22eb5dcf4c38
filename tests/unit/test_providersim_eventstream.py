"""The provider simulator's AWS event-stream encoder, read back by botocore's own decoder."""

from __future__ import annotations

import base64
import json

from botocore.eventstream import EventStreamBuffer

from relaygate.providersim.server import bedrock_event, event_frame


def test_frames_decode_with_botocore_even_when_split_anywhere():
    frames = bedrock_event("messageStart", {"role": "assistant"}) + bedrock_event(
        "metadata", {"usage": {"inputTokens": 3, "outputTokens": 12}}
    )
    chunk = {"bytes": base64.b64encode(b'{"type":"message_stop"}').decode()}
    frames += bedrock_event("chunk", chunk)
    for cut in (1, 7, 13, len(frames) // 2, len(frames) - 1):
        buf = EventStreamBuffer()
        buf.add_data(frames[:cut])
        got = list(buf)
        buf.add_data(frames[cut:])
        got += list(buf)  # botocore checks both CRC32s and the lengths of every message
        assert [m.headers[":event-type"] for m in got] == ["messageStart", "metadata", "chunk"]
        assert all(
            m.headers[":message-type"] == "event" and m.headers[":content-type"] == "application/json" for m in got
        )
        assert json.loads(got[1].payload)["usage"]["outputTokens"] == 12
        assert json.loads(got[2].payload) == chunk


def test_empty_payload_and_no_headers():
    (m,) = list(_decode(event_frame({}, b"")))
    assert m.headers == {} and m.payload == b""


def _decode(data: bytes):
    buf = EventStreamBuffer()
    buf.add_data(data)
    return buf
