"""What a change notification may ask of a replica (relaygate/controlplane/changefeed.py): a kind to
invalidate, never data; its own notifications are skipped, anything else unclear invalidates all."""

from __future__ import annotations

import json

from relaygate.controlplane import changefeed


def test_a_notification_names_one_kind_and_its_origin():
    raw = changefeed.payload("replica-a", "config")
    assert json.loads(raw) == {"origin": "replica-a", "kind": "config"}
    assert changefeed.parse(raw, "replica-b") == {"config"}
    assert changefeed.parse(raw, "replica-a") == frozenset()  # its own change, applied already


def test_a_payload_that_does_not_parse_or_names_an_unknown_kind_invalidates_everything():
    for raw in ("", "not json", "[]", '{"origin": 1, "kind": "config"}', '{"kind": "config"}'):
        assert changefeed.parse(raw, "me") == changefeed.ALL, raw
    assert changefeed.parse(json.dumps({"origin": "x", "kind": "drop-keys"}), "me") == changefeed.ALL


def test_extra_fields_carry_nothing():
    raw = json.dumps({"origin": "x", "kind": "keys", "key": "rk_live_stolen", "bundle": "AAAA"})
    assert changefeed.parse(raw, "me") == {"keys"}


def test_database_urls_map_to_what_asyncpg_connects_to():
    assert changefeed.asyncpg_dsn("postgresql+asyncpg://u@h:5/db") == "postgresql://u@h:5/db"
    assert changefeed.asyncpg_dsn("postgres://u@h/db") == "postgresql://u@h/db"
