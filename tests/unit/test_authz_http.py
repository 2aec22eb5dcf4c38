"""The ext_authz HTTP transport in-process: the check server on a real Unix socket, spoken to in
raw HTTP/1.1 the way Envoy's ext_authz filter does, over a real spool and ledger. What Envoy is
told (status, headers, body) is read off the wire."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import orjson
import pytest

from relaygate.contract.envoy import (
    AUTHZ_BODY_HEADER,
    AUTHZ_DENY_5XX,
    AUTHZ_PATH_HEADER,
    AUTHZ_REMOVE_HEADER,
    AUTHZ_STATUS_HEADER,
    PREAUTH_HEADER,
    RECEIPT_HEADER,
    UPSTREAM_HEADER,
    receipt_id_for,
)
from relaygate.decision.admission import Verdict
from relaygate.extproc import authz_http
from relaygate.extproc.recorder import Recorder
from relaygate.extproc.spool import Spool
from tests.unit.snapshot import build, headers

REQUEST_ID = "5b6a1c2e-0d4f-4c1b-9e8a-7f6e5d4c3b2a"


@pytest.fixture
def service(tmp_path):
    adm, tokens = build(tmp_path / "config")
    spool = Spool(tmp_path / "data" / "receipts.db")
    yield authz_http.AuthzService(lambda: adm, Recorder(spool)), spool, tokens
    spool.close()


def _request(h: dict[str, str], body: bytes) -> bytes:
    """What Envoy sends: the call's method, /check + its path, its headers, its buffered body."""
    lines = [f"{h[':method']} /check{h[':path']} HTTP/1.1", "host: policy"]
    lines += [f"{k}: {v}" for k, v in h.items() if not k.startswith(":")]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off the wire: status, headers (lower-case names), body."""
    status_line = await reader.readline()
    hs: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode("latin-1").partition(":")
        hs[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), hs, await reader.readexactly(int(hs["content-length"]))


def _with_server(service, client):
    """Run ``await client(socket_path)`` against the real check server on a fresh Unix socket."""

    async def run(sock_path):
        server = await authz_http.serve(service, f"unix:{sock_path}")
        try:
            return await client(str(sock_path))
        finally:
            server.close()

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(run(Path(d) / "authz.sock"))


def _exchange(service, *requests: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send requests over one keep-alive connection to the real server; parse each reply."""

    async def client(sock):
        reader, writer = await asyncio.open_unix_connection(sock)
        out = []
        for req in requests:
            writer.write(req)
            out.append(await _reply(reader))
        writer.close()
        return out

    return _with_server(service, client)


def _chat(model: str = "gpt-4o-mini", **extra) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "authz-unit"}], **extra})


def test_an_allowed_call_names_upstream_credential_path_and_the_headers_to_drop(service):
    svc, spool, tokens = service
    h = headers(
        tokens["acme"], x_request_id=REQUEST_ID, x_evil="1", openai_organization="org-attacker", x_relaygate_path="/x"
    )
    [(status, hs, body)] = _exchange(svc, _request(h, _chat(max_tokens=5)))
    assert status == 200 and body == b""
    assert hs[UPSTREAM_HEADER] in ("openai-us", "openai-eu")
    assert hs["authorization"] == "Bearer sk-test-openai"  # the platform's credential, not the client's key
    assert hs[AUTHZ_PATH_HEADER] == "/v1/chat/completions"
    removed = set(hs[AUTHZ_REMOVE_HEADER].split(","))
    assert {"x-evil", "openai-organization"} <= removed
    # Envoy removes after it sets: listing the client's copy of the path header would drop ours.
    assert AUTHZ_PATH_HEADER not in removed
    assert AUTHZ_BODY_HEADER not in hs  # nothing to rewrite: max_tokens was given
    state, draft = spool.draft(receipt_id_for(REQUEST_ID))
    assert state == "pending" and draft["decision"]["allow"] and draft["upstream"]["name"] == hs[UPSTREAM_HEADER]


def test_a_body_the_gateway_rewrites_comes_back_whole_for_envoy_to_apply(service):
    svc, _, tokens = service
    [(status, hs, _)] = _exchange(svc, _request(headers(tokens["acme"]), _chat(stream=True)))
    assert status == 200
    new = orjson.loads(hs[AUTHZ_BODY_HEADER])
    assert new["stream_options"]["include_usage"] is True and new["max_tokens"] > 0


def test_denials_carry_status_json_body_and_receipt_and_a_5xx_is_sent_as_418(service):
    svc, spool, tokens = service
    forged = tokens["acme"][:-3] + "xyz"
    replies = _exchange(
        svc,
        _request(headers(forged, x_request_id=REQUEST_ID), _chat()),
        _request(headers(tokens["euro"], workspace="euro", x_request_id="r-2"), _chat("gpt-4o")),
        _request(headers(tokens["acme"], ctype="text/plain", x_request_id="r-3"), b"hello"),
    )
    (s1, h1, b1), (s2, h2, b2), (s3, _, b3) = replies
    assert s1 == 401 and h1[PREAUTH_HEADER] == "1" and h1["content-type"] == "application/json"
    err = orjson.loads(b1)["error"]
    assert err["code"] == "auth.unauthenticated" and err["receipt_id"] == h1[RECEIPT_HEADER] == receipt_id_for(
        REQUEST_ID
    )
    _, draft = spool.draft(receipt_id_for(REQUEST_ID))
    assert draft["response_digest"] == "sha256:" + hashlib.sha256(b1).hexdigest()
    assert s2 == 451 and PREAUTH_HEADER not in h2 and orjson.loads(b2)["error"]["code"] == "sovereignty.blocked"
    assert s3 == 415 and orjson.loads(b3)["error"]["code"] == "request.unsupported_media_type"
    # A 5xx denial (here: the policy service's own failure) cannot be a 5xx to Envoy's HTTP check.
    d = svc.recorder.denied(
        authz_http.Call(svc.admission(), receipt_id="rcpt_x"), Verdict.deny(503, "budget.unavailable", "down")
    )
    raw = authz_http.denied_reply(d)
    assert raw.startswith(b"HTTP/1.1 %d " % AUTHZ_DENY_5XX) and f"{AUTHZ_STATUS_HEADER}: 503".encode() in raw


def test_a_header_value_with_a_line_break_never_reaches_the_wire():
    with pytest.raises(ValueError):
        authz_http.http_reply(200, [("x-a", "ok\r\nx-injected: 1")])


def _concurrent(service, requests: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """Each request on its own connection, all written before any answer is read (one loop turn
    of the server sees them all, as when Envoy has many calls in flight)."""

    async def client(sock):
        conns = [await asyncio.open_unix_connection(sock) for _ in requests]
        for (_, writer), req in zip(conns, requests):
            writer.write(req)
        out = []
        for reader, writer in conns:
            out.append(await _reply(reader))
            writer.close()
        return out

    return _with_server(service, client)


def _outage_calls(tokens, n: int, tag: str) -> list[bytes]:
    return [
        _request(headers(tokens["outage"], workspace="outage", x_request_id=f"{tag}-{i}"), _chat(max_tokens=5))
        for i in range(n)
    ]


def test_calls_decided_in_one_loop_turn_share_one_spool_commit(service):
    """Group commit (issue 13 item 2): one transaction for what one turn decided, every draft durable."""
    svc, spool, tokens = service
    commits = []
    spool.db.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    replies = _concurrent(svc, _outage_calls(tokens, 8, "grp"))
    spool.db.set_trace_callback(None)
    assert [s for s, _, _ in replies] == [200] * 8
    assert 1 <= len(commits) < 8, commits  # without grouping: one commit per call
    # Durable: another connection (another process after a crash) sees every draft.
    other = sqlite3.connect(spool.path)
    ids = [receipt_id_for(f"grp-{i}") for i in range(8)]
    rows = other.execute(f"SELECT id FROM receipts WHERE state = 'pending' AND id IN ({','.join('?' * 8)})", ids)
    assert sorted(r[0] for r in rows) == sorted(ids)
    other.close()


def test_when_the_group_commit_fails_no_call_is_let_through_and_holds_are_released(service):
    """The disk refuses the transaction after the drafts were written into it: the answers already
    decided must not reach Envoy as allowed, and the budget holds they took are given back."""
    svc, spool, tokens = service
    adm = svc.admission()
    # A real deferred foreign-key violation makes SQLite refuse the COMMIT itself (not the INSERT).
    spool.db.executescript(
        """
        PRAGMA foreign_keys = ON;
        CREATE TEMP TABLE parent(id INTEGER PRIMARY KEY);
        CREATE TEMP TABLE child(pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
        CREATE TEMP TRIGGER refuse_commit AFTER INSERT ON main.receipts
        WHEN CAST(NEW.draft AS TEXT) LIKE '%"workspace":"outage"%' BEGIN INSERT INTO child VALUES (42); END;
        """
    )
    replies = _concurrent(svc, _outage_calls(tokens, 4, "lost"))
    assert [s for s, _, _ in replies] == [500] * 4  # Envoy refuses a call whose check answers 5xx
    assert all(UPSTREAM_HEADER not in hs for _, hs, _ in replies)
    assert all(spool.draft(receipt_id_for(f"lost-{i}")) is None for i in range(4))
    held = adm.ledger.snapshot()
    assert held and all(reserved == 0 for _, reserved in held.values()), held  # outage's USD budget
    # The spool works on: the next call (no trigger match) is committed and answered.
    spool.db.execute("DROP TRIGGER temp.refuse_commit")
    [(status, _, _)] = _exchange(svc, _outage_calls(tokens, 1, "after")[0])
    assert status == 200 and spool.draft(receipt_id_for("after-0"))[0] == "pending"
    assert any(reserved > 0 for _, reserved in adm.ledger.snapshot().values())
