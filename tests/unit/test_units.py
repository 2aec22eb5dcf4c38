"""Unit tests of the pieces under the gateway: ledger, receipts, keys, wire parsing, config, Rego."""

from __future__ import annotations

import base64
import threading
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import yaml

from relaygate.evidence.receipts import (
    GENESIS_HASH,
    canonical,
    envelope_hash,
    envelope_receipt,
    envelope_statement,
    sign_receipt,
    verify_chain,
    verify_receipt,
)
from relaygate.evidence.signing import load_or_create_signer
from relaygate.contract import config as config_mod
from relaygate.contract import keys
from relaygate.decision.ledger import Hold, InMemoryLedger, window_bounds
from relaygate.decision.policy_engine import PolicyError, RegorusEngine, build_engine
from relaygate.decision.policy_tests import run as run_policy_tests
from relaygate.decision.wire import BadRequest, parse_body, parse_path
from tests.conftest import POLICY_DIR, write_config


# -- ledger -------------------------------------------------------------------
def test_ledger_is_exact_under_thread_contention():
    ledger = InMemoryLedger()
    admitted = []

    def worker():
        for _ in range(500):
            if ledger.reserve([Hold("b", "2026-11", 7, "tokens")], {"b": 7 * 1000}) is None:
                admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1000 and ledger.used("b", "2026-11") == 7000


def test_ledger_reserves_all_or_nothing_and_settles():
    ledger = InMemoryLedger()
    holds = [Hold("ws", "d", 60, "tokens"), Hold("key", "d", 90, "usd")]
    assert ledger.reserve(holds, {"ws": 100, "key": 100}) is None
    assert ledger.reserve(holds, {"ws": 100, "key": 100}) == "ws"
    assert ledger.used("key", "d") == 90  # the failed call reserved nothing
    ledger.settle(holds, {"tokens": 20, "usd": 5})
    assert ledger.used("ws", "d") == 20 and ledger.used("key", "d") == 5


def test_calendar_windows():
    now = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
    assert window_bounds("day", now) == ("2026-12-31", datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert window_bounds("month", now) == ("2026-12", datetime(2027, 1, 1, tzinfo=timezone.utc))


# -- receipts -----------------------------------------------------------------
def test_receipt_signature_and_chain_detect_tampering(tmp_path):
    signer = load_or_create_signer(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    first, h1 = sign_receipt({"id": "a", "prev_hash": GENESIS_HASH, "cost": {"usd_micros": 5}}, signer)
    second, _ = sign_receipt({"id": "b", "prev_hash": h1, "cost": {"usd_micros": 1}}, signer)
    verify_chain([first, second], signer.public_key)
    assert envelope_hash(first) == h1 and envelope_receipt(second)["prev_hash"] == h1
    assert first["payloadType"] == "application/vnd.in-toto+json"

    statement = envelope_statement(first)
    statement["predicate"]["cost"]["usd_micros"] = 0
    forged = {**first, "payload": base64.b64encode(canonical(statement)).decode()}
    assert not verify_receipt(forged, signer.public_key)
    relabelled = {**first, "payloadType": "application/json"}  # the type is signed too (PAE)
    assert not verify_receipt(relabelled, signer.public_key)
    with pytest.raises(ValueError, match="bad signature"):
        verify_chain([forged, second], signer.public_key)
    third, _ = sign_receipt({"id": "c", "prev_hash": GENESIS_HASH}, signer)
    with pytest.raises(ValueError, match="chain broken"):
        verify_chain([first, third], signer.public_key)
    other = load_or_create_signer(tmp_path / "other.pem")
    assert not verify_receipt(first, other.public_key)
    assert load_or_create_signer(tmp_path / "k.pem").key_id == signer.key_id  # reloads, not regenerates


# -- keys ---------------------------------------------------------------------
def test_keys_are_stored_only_as_peppered_hashes():
    token, record = keys.new_key(b"pepper")
    key_id, secret = keys.split_key(token)
    assert record["id"] == key_id and secret not in str(record)
    assert keys.matches(b"pepper", record["salt"], record["hash"], secret)
    assert not keys.matches(b"other-pepper", record["salt"], record["hash"], secret)
    assert not keys.matches(b"pepper", record["salt"], record["hash"], secret + "x")
    assert keys.split_key("ro_live_short_x") is None and keys.split_key("sk-abc") is None


# -- wire ---------------------------------------------------------------------
def test_paths():
    assert parse_path("/v1/acme/chat/completions").endpoint == "chat.completions"
    assert parse_path("/v1/acme/v1/messages").endpoint == "messages"
    assert parse_path("/v1/acme/embeddings?x=1").query == "?x=1"
    assert parse_path("/v1/acme/files") is None
    assert parse_path("/v1/acme/models").endpoint == "models"  # the model list (GET)
    assert parse_path("/v1/acme/v1/models").anthropic_sdk and not parse_path("/v1/acme/models").anthropic_sdk
    assert parse_path("/v1/../etc/chat/completions") is None


def test_body_rewrites_add_cap_and_stream_usage():
    raw = orjson.dumps({"model": "m", "stream": True, "messages": []})
    shape = parse_body("chat.completions", raw, 300)
    doc = orjson.loads(shape.body)
    assert shape.rewritten and doc["max_tokens"] == 300 and doc["stream_options"] == {"include_usage": True}
    assert shape.max_output_tokens == 300 and shape.input_token_bound == len(raw)
    kept = orjson.dumps({"model": "m", "max_completion_tokens": 9, "messages": []})
    shape = parse_body("chat.completions", kept, 300)
    assert not shape.rewritten and shape.body == kept and shape.max_output_tokens == 9
    assert parse_body("embeddings", b'{"model": "e", "input": "x"}', 300).max_output_tokens == 0


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"{", "request.invalid_json"),
        (b"[]", "request.invalid"),
        (b'{"model": ""}', "request.invalid"),
        (b'{"model": "m", "max_tokens": 0}', "request.invalid"),
        (b'{"model": "m", "max_tokens": true}', "request.invalid"),
        (b'{"model": "m", "stream": true, "stream_options": 3}', "request.invalid"),
    ],
)
def test_bad_bodies(raw, code):
    with pytest.raises(BadRequest) as e:
        parse_body("chat.completions", raw, 100)
    assert e.value.code == code and e.value.status == 400


# -- config -------------------------------------------------------------------
def test_config_loads_and_hides_secrets(tmp_path):
    write_config(tmp_path)
    cfg = config_mod.load(tmp_path)
    assert {u.name for u in cfg.upstreams} >= {"openai-us", "openai-eu"}
    assert "sk-test-openai" not in repr(cfg) and "test-pepper" not in repr(cfg)
    assert cfg.upstreams[0].models["gpt-4o-mini"].input_micros_per_1k == 150_000


@pytest.mark.parametrize(
    "file,content,message",
    [
        ("upstreams.yaml", "upstreams: [", "invalid YAML"),
        ("upstreams.yaml", "upstreams: []", "non-empty 'upstreams'"),
        ("upstreams.yaml", "upstreams: [{name: x, provider: cohere, address: 'a:1'}]", "provider must be"),
        ("upstreams.yaml", "upstreams: [{name: x, provider: openai, address: nope}]", "host:port"),
        ("budgets.yaml", "budgets: [{id: b, workspace: w, unit: euros, window: day, limit: 1}]", "unit must be"),
        ("keys.yaml", "keys: [{id: k, workspace: nowhere, salt: s, hash: h}]", "unknown workspace"),
        # once a TypeError from int(): an operator's typo must name the field, not crash the sidecar
        ("gateway.yaml", "max_body_bytes: [1]", "max_body_bytes must be a positive whole number"),
        ("gateway.yaml", "max_body_bytes: 0", "max_body_bytes must be a positive whole number"),
        ("gateway.yaml", "default_max_output_tokens: 1.5", "default_max_output_tokens must be a positive"),
        ("workspaces.yaml", "workspaces: {acme: {default_max_output_tokens: x}}", "workspace 'acme': default_max"),
    ],
)
def test_config_errors_name_the_problem(tmp_path, file, content, message):
    write_config(tmp_path)
    (tmp_path / file).write_text(content)
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.load(tmp_path)


def test_missing_credential_is_a_config_error(tmp_path):
    write_config(tmp_path)
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"key_pepper": "p"}))
    with pytest.raises(config_mod.ConfigError, match="no credential 'openai'"):
        config_mod.load(tmp_path)


# -- Rego ---------------------------------------------------------------------
def test_rego_unit_tests_pass():
    results = run_policy_tests(POLICY_DIR)
    assert len(results) >= 8
    assert [name for name, ok in results.items() if not ok] == []


def test_rego_test_runner_reports_failures(tmp_path):
    (tmp_path / "x_test.rego").write_text(
        "package x_test\nimport rego.v1\ntest_fails if { 1 == 2 }\ntest_passes if { 1 == 1 }\n"
    )
    assert run_policy_tests(tmp_path) == {"x_test.test_fails": False, "x_test.test_passes": True}


def test_bad_rego_is_rejected_with_location(tmp_path):
    (tmp_path / "bad.rego").write_text("package relaygate.gateway\n\ndecision := {\n")
    with pytest.raises(PolicyError, match=r"bad.rego:\d+:\d+"):
        build_engine({"bad.rego": (tmp_path / "bad.rego").read_text()}, {})


def test_engine_requires_the_entry_point(tmp_path):
    (tmp_path / "other.rego").write_text("package other\nimport rego.v1\nx := 1\n")
    with pytest.raises(PolicyError, match="relaygate.gateway"):
        RegorusEngine(tmp_path)


def test_engine_is_usable_from_many_threads():
    engine = RegorusEngine(POLICY_DIR)
    doc = orjson.dumps(
        {
            "version": 1,
            "endpoint": "embeddings",
            "model": "e",
            "stream": False,
            "principal": {"key_id": "k", "workspace": "w", "endpoints": ["embeddings"], "models": ["*"]},
            "workspace": {"id": "w", "allowed_jurisdictions": [], "allowed_regions": []},
            "candidates": [
                {
                    "name": "u",
                    "provider": "openai",
                    "region": "r",
                    "jurisdiction": "us",
                    "cost": {"tokens": 1, "usd_micros": 1},
                }
            ],
            "budgets": [],
        }
    ).decode()
    out = []
    threads = [threading.Thread(target=lambda: out.append(engine.decide(doc)["upstream"])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["u"] * 4


def test_policy_data_conflicts_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("relaygate: {x: 1}\n")
    (tmp_path / "b.yaml").write_text("relaygate: {x: 2}\n")
    from relaygate.decision.policy_engine import load_policy_sources

    with pytest.raises(PolicyError, match="defined twice"):
        load_policy_sources(Path(tmp_path))


def _policy_input(**over):
    doc = {
        "version": 1,
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "stream": False,
        "principal": {"key_id": "k", "workspace": "w", "endpoints": ["chat.completions"], "models": ["gpt-4o*"]},
        "workspace": {"id": "w", "allowed_jurisdictions": ["eea"], "allowed_regions": []},
        "candidates": [
            {
                "name": "us",
                "provider": "openai",
                "region": "us-east-1",
                "jurisdiction": "us",
                "cost": {"tokens": 100, "usd_micros": 7},
            },
            {
                "name": "eu",
                "provider": "openai",
                "region": "eu-west-1",
                "jurisdiction": "eu",
                "cost": {"tokens": 100, "usd_micros": 9},
            },
        ],
        "budgets": [{"id": "b", "unit": "usd", "window": "day", "limit": 10, "used": 0}],
    }
    doc.update(over)
    return orjson.dumps(doc).decode()


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"endpoint": "embeddings"},
        {"model": "o1"},
        {"candidates": []},
        {"workspace": {"id": "w", "allowed_jurisdictions": ["ch"], "allowed_regions": []}},
        {"budgets": [{"id": "b", "unit": "usd", "window": "day", "limit": 10, "used": 2}]},
        {"budgets": [{"id": "b", "unit": "tokens", "window": "month", "limit": 100, "used": 0}]},
    ],
)
def test_compiled_policy_decides_like_the_interpreter(over):
    """The RVM bytecode on the hot path must agree with the interpreter the Rego tests use."""
    compiled, interpreted = RegorusEngine(POLICY_DIR), RegorusEngine(POLICY_DIR, compiled=False)
    assert compiled.compiled and not interpreted.compiled
    doc = _policy_input(**over)
    assert compiled.decide(doc) == interpreted.decide(doc)


def test_fast_canonical_json_matches_rfc8785():
    import random

    import rfc8785

    from relaygate.evidence.receipts import canonical

    rnd = random.Random(8785)
    chars = [chr(c) for c in range(0, 0x3000)] + ["\u2028", "\ufeff", "\U0001f600", "é", '"', "\\"]

    def value(depth):
        kind = rnd.randrange(7 if depth < 3 else 4)
        if kind == 0:
            return "".join(rnd.choice(chars) for _ in range(rnd.randrange(6)))
        if kind == 1:
            return rnd.choice([0, -1, 2**53 - 1, -(2**53 - 1), rnd.randrange(-(10**9), 10**9)])
        if kind == 2:
            return rnd.choice([True, False, None])
        if kind == 3:
            return rnd.choice([0.1, 1e21, -0.0, 3.0, 1 / 3])  # floats: reference path
        if kind in (4, 5):
            return {
                "".join(rnd.choice(chars) for _ in range(rnd.randrange(1, 4))): value(depth + 1)
                for _ in range(rnd.randrange(4))
            }
        return [value(depth + 1) for _ in range(rnd.randrange(4))]

    for _ in range(3000):
        v = {"r": value(0)}
        assert canonical(v) == rfc8785.dumps(v)


def test_sweep_finishes_what_the_access_log_dropped(tmp_path):
    """Envoy's access log may drop entries: denials complete from their decision, allowed calls expire."""
    from relaygate.extproc.settlement import DENIAL_GRACE, Finalizer
    from relaygate.extproc.spool import Spool

    spool = Spool(tmp_path / "r.db")
    ledger = InMemoryLedger()
    hold = Hold("b", "2026-11", 500, "tokens")
    assert ledger.reserve([hold], {"b": 1000}) is None
    base = {
        "workspace": "w",
        "key_id": "k",
        "endpoint": "chat.completions",
        "path": "/v1/w/chat/completions",
        "request": {"digest": None, "bytes": 10},
        "model": "m",
        "stream": False,
        "price": [1000, 1000],
    }
    now = 1_000_000.0
    spool.add_pending(
        "rcpt_denied",
        {
            **base,
            "ts": now - 5,
            "upstream": None,
            "worst": None,
            "holds": [],
            "decision": {
                "allow": False,
                "status": 451,
                "code": "sovereignty.blocked",
                "reasons": ["x"],
                "policies": [],
            },
        },
    )
    spool.add_pending(
        "rcpt_allowed",
        {
            **base,
            "ts": now - 5,
            "upstream": {"name": "u"},
            "worst": [10, 490],
            "holds": [["b", "2026-11", 500, "tokens"]],
            "decision": {"allow": True, "status": 200, "code": "ok", "reasons": [], "policies": []},
        },
    )
    spool.db.execute("UPDATE receipts SET created = ?", (now - 5,))
    fin = Finalizer(spool, ledger, load_or_create_signer(tmp_path / "k.pem"), "t")
    assert fin.sweep(now, grace=3600) == 1  # the allowed call may still be streaming
    denied = envelope_receipt(spool.envelope("rcpt_denied"))
    assert denied["status"] == "complete" and denied["response"]["status"] == 451
    assert spool.draft("rcpt_allowed")[0] == "pending" and ledger.used("b", "2026-11") == 500
    assert fin.sweep(now + DENIAL_GRACE, grace=1) == 1
    allowed = envelope_receipt(spool.envelope("rcpt_allowed"))
    assert allowed["status"] == "incomplete" and allowed["usage"]["source"] == "reserved"
    assert allowed["cost"]["usd_micros"] == 500 and ledger.used("b", "2026-11") == 500  # hold became spend
    verify_chain(spool.envelopes(), fin.signer.public_key)
    spool.close()


# -- fleet health windows ---------------------------------------------------------
def test_fleet_health_window_spans_the_last_heartbeats_and_restarts_with_the_sidecar(tmp_path):
    """The window lives in the database (heartbeat_samples), so any replica reads the same one."""
    import asyncio
    from types import SimpleNamespace

    import sqlalchemy as sa

    from relaygate.controlplane.db import create_engine, migrate
    from relaygate.controlplane.fleet import RATE_WINDOW_S, Fleet

    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        fleet, other = Fleet(engine, SimpleNamespace()), Fleet(engine, SimpleNamespace())

        async def observe(posture: dict, at: int) -> None:
            async with engine.begin() as c:
                await fleet.observe(c, "gw", posture, at)

        async def window(f: Fleet = fleet):
            async with engine.connect() as c:
                return await f._window(c, "gw")

        assert await window() is None
        await observe({"calls_total": 10, "errors_total": 0}, 1_000)
        assert await window() is None  # one heartbeat: no span yet
        for i in range(1, 40):  # 2 s apart, 5 calls and 1 error each
            await observe({"calls_total": 10 + 5 * i, "errors_total": i}, 1_000 + 2_000 * i)
        t0, t1, calls, errors = await window()
        assert t1 == 1_000 + 2_000 * 39 and t0 <= t1 - RATE_WINDOW_S * 1000 < t0 + 2_000
        assert calls == 5 * (t1 - t0) / 2_000 and errors == (t1 - t0) / 2_000
        assert await window(other) == (t0, t1, calls, errors)  # another replica: the same window
        async with engine.connect() as c:  # pruned: the one at or before the window's start, and those since
            kept = (await c.execute(sa.text("SELECT count(*) FROM heartbeat_samples"))).scalar()
        assert kept == (t1 - t0) // 2_000 + 1
        await observe({"calls_total": 3, "errors_total": 0}, t1 + 2_000)  # counters went back: restarted
        assert await window() is None
        await observe({"calls_total": "many", "errors_total": 0}, t1 + 4_000)  # not a number: ignored
        await observe({"calls_total": 9, "errors_total": 1}, t1 + 6_000)
        assert await window() == (t1 + 2_000, t1 + 6_000, 6, 1)
        await engine.dispose()

    asyncio.run(run())


def test_shared_ledger_windows_expire_two_days_after_they_end():
    from relaygate.decision.ledger import window_expiry

    day = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp() + 2 * 86400
    assert window_expiry("2026-12-02") == day
    assert window_expiry("2026-12") == datetime(2027, 1, 3, tzinfo=timezone.utc).timestamp()
    assert window_expiry("2026-02") == datetime(2026, 3, 3, tzinfo=timezone.utc).timestamp()


# -- hot-path shortcuts that must not change a byte ----------------------------------------------
def test_receipt_timestamps_are_exactly_the_strftime_ones():
    """_rfc3339 formats the second once a second; the text must equal the plain strftime's,
    rounding of microseconds and the carry into the next second included."""
    import math
    import random
    from datetime import datetime, timezone

    from relaygate.extproc.settlement import _rfc3339

    rng = random.Random(13)
    edges = (0.0, 0.0000005, 0.0005, 0.9995, 0.99949999, 0.9999994999, 0.9999995, 0.99999999)
    stamps = [rng.uniform(0, 4e9) for _ in range(20000)]
    stamps += [math.floor(rng.uniform(1.7e9, 1.8e9)) + e for e in edges for _ in range(200)]
    for ts in stamps:
        ref = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert _rfc3339(ts) == ref, ts


def test_budget_windows_are_exactly_the_calendar_ones():
    import random
    from datetime import datetime, timedelta, timezone

    from relaygate.decision.ledger import window_bounds

    rng = random.Random(7)
    for _ in range(20000):
        now = datetime.fromtimestamp(rng.uniform(0, 4e9), timezone.utc)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        assert window_bounds("day", now) == (day.strftime("%Y-%m-%d"), day + timedelta(days=1))
        assert window_bounds("month", now) == (month.strftime("%Y-%m"), (month + timedelta(days=32)).replace(day=1))


def test_whole_numbers_stored_as_floats_still_load(tmp_path):
    """JSON Schema's "integer" admits 501.0 and the control plane stores it as given: a bundle
    with it must build (the peer of the errors above; the fuzzer found the 500 it caused)."""
    write_config(tmp_path)
    (tmp_path / "gateway.yaml").write_text("max_body_bytes: 1048576.0\ndefault_max_output_tokens: 256.0\n")
    ws = yaml.safe_load((tmp_path / "workspaces.yaml").read_text())
    ws["workspaces"]["acme"]["default_max_output_tokens"] = 501.0
    (tmp_path / "workspaces.yaml").write_text(yaml.safe_dump(ws))
    cfg = config_mod.load(tmp_path)
    assert cfg.max_body_bytes == 1048576 and isinstance(cfg.max_body_bytes, int)
    assert cfg.workspaces["acme"].default_max_output_tokens == 501
    assert cfg.workspaces["euro"].default_max_output_tokens == 256
