"""A receipt's in-toto subjects are the SHA-256 of the request and response bodies as they crossed the gateway.

The response digest of a forwarded call is computed by Envoy's Lua filter as
the body streams; a denial's, from the error body the policy service sent; an
Envoy-made reply's, from the template Envoy rendered. Each is checked against
the bytes the client actually received.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

from relaygate.evidence.receipts import envelope_statement, verify_receipt
from tests.httpcall import chat_body, curl


def _subjects(gw, rid: str) -> dict:
    env = gw.receipt(rid)
    assert verify_receipt(env, gw.public_key())
    st = envelope_statement(env)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    return {s["name"]: s["digest"]["sha256"] for s in st["subject"]}


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _auth(gw, name="acme"):
    return {"authorization": f"Bearer {gw.tokens[name]}", "content-type": "application/json"}


def test_json_response_and_request_digests(gw):
    body = chat_body(content="digest me", max_tokens=7)
    reply = curl(gw.base("acme") + "/chat/completions", body, _auth(gw))
    assert reply.status == 200
    subjects = _subjects(gw, reply.receipt_id)
    assert subjects["request"] == _h(body.encode())  # as the client sent it (before any rewrite)
    assert subjects["response"] == _h(reply.body)


def test_streamed_response_digest_covers_every_event(gw):
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "s"}]})
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-N",
            "-D",
            "-",
            gw.base("acme") + "/chat/completions",
            "-H",
            f"authorization: Bearer {gw.tokens['acme']}",
            "-H",
            "content-type: application/json",
            "-H",
            "x-sim-chunk-delay-ms: 20",
            "--data-binary",
            body,
        ],
        capture_output=True,
        check=True,
    )
    head, _, streamed = out.stdout.partition(b"\r\n\r\n")
    rid = [
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-relayone-receipt-id")
    ][0]
    assert streamed.count(b"data: ") > 10 and streamed.rstrip().endswith(b"data: [DONE]")
    assert _subjects(gw, rid)["response"] == _h(streamed)


def test_denial_digest_is_the_error_body_sent(gw):
    reply = curl(gw.base("swiss") + "/chat/completions", chat_body(), _auth(gw, "swiss"))
    assert reply.status == 451
    subjects = _subjects(gw, reply.receipt_id)
    assert subjects["response"] == _h(reply.body) and subjects["request"] == _h(chat_body().encode())
    unauth = curl(gw.base("acme") + "/chat/completions", chat_body(), {"content-type": "application/json"})
    assert unauth.status == 401
    assert _subjects(gw, unauth.receipt_id) == {"response": _h(unauth.body)}  # body never read


def test_envoy_made_replies_have_their_digests(gw):
    big = chat_body(content="x" * (3 * 1024 * 1024))
    too_large = curl(gw.base("acme") + "/chat/completions", big, {**_auth(gw), "transfer-encoding": "chunked"})
    assert too_large.status == 413
    assert _subjects(gw, too_large.receipt_id)["response"] == _h(too_large.body)
    dead = curl(gw.base("acme") + "/chat/completions", chat_body("dead-model"), _auth(gw))
    assert dead.status == 503
    assert _subjects(gw, dead.receipt_id)["response"] == _h(dead.body)
