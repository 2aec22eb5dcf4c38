"""Model aliases in the gateway config: how they resolve, and the catalogs refused as ambiguous."""

from __future__ import annotations

import pytest

from relaygate.contract.config import ConfigError, from_documents


def _docs(models_a: dict, models_b: dict | None = None, ws_aliases=None) -> dict:
    ups = [
        {"name": "a", "provider": "openai", "address": "h:1", "region": "r", "jurisdiction": "us", "credential": "c"}
        | {"models": models_a}
    ]
    if models_b is not None:
        ups.append(dict(ups[0], name="b", models=models_b))
    ws = {"acme": {"model_aliases": ws_aliases} if ws_aliases is not None else {}, "other": {}}
    return {"upstreams": {"upstreams": ups}, "workspaces": {"workspaces": ws}}


def _cfg(*a, **kw):
    return from_documents(_docs(*a, **kw), {"key_pepper": "p", "c": "secret"})


def test_resolution_order_workspace_then_platform_one_step_each():
    cfg = _cfg(
        {"gpt-4o": {"aliases": ["gpt-4"]}, "gpt-4o-mini": {}},
        ws_aliases={"smart": "gpt-4", "fast": "gpt-4o-mini", "gpt-4": "gpt-4o-mini"},
    )
    assert cfg.resolve_model("acme", "smart") == "gpt-4o"  # workspace alias to a platform alias
    assert cfg.resolve_model("acme", "gpt-4") == "gpt-4o-mini"  # the workspace's own name wins
    assert cfg.resolve_model("other", "gpt-4") == "gpt-4o"
    assert cfg.resolve_model("other", "smart") == "smart"  # not other's alias: left as it is
    assert cfg.resolve_model("nowhere", "gpt-4") == "gpt-4o"
    assert cfg.catalog() == {"gpt-4o": ["gpt-4"], "gpt-4o-mini": []}


def test_the_same_alias_on_two_upstreams_of_one_model_is_one_alias():
    cfg = _cfg({"gpt-4o": {"aliases": ["gpt-4"]}}, {"gpt-4o": {"aliases": ["gpt-4", "gpt-4-turbo"]}})
    assert cfg.model_aliases == {"gpt-4": "gpt-4o", "gpt-4-turbo": "gpt-4o"}


@pytest.mark.parametrize(
    "a, b, ws, why",
    [
        ({"gpt-4o": {"aliases": ["gpt-4o-mini"]}, "gpt-4o-mini": {}}, None, None, "a model's own name"),
        ({"gpt-4o": {"aliases": ["x"]}}, {"gpt-4o-mini": {"aliases": ["x"]}}, None, "names both"),
        ({"gpt-4o": {"aliases": ["gpt-4o"]}}, None, None, "not a model name"),
        ({"gpt-4o": {"aliases": ["x", "x"]}}, None, None, "twice"),
        ({"gpt-4o": {"aliases": "gpt-4"}}, None, None, "must be a list"),
        ({"gpt-4o": {"aliases": [""]}}, None, None, "not a model name"),
        ({"gpt-4o": {"aliases": ["x" * 257]}}, None, None, "not a model name"),
        ({"gpt-4o": {}}, None, {"a": 5}, "not a model name"),
        ({"gpt-4o": {}}, None, {"a": "a"}, "names itself"),
        ({"gpt-4o": {}}, None, ["a"], "must be a mapping"),
    ],
)
def test_ambiguous_or_malformed_aliases_are_refused(a, b, ws, why):
    with pytest.raises(ConfigError, match=why):
        _cfg(a, b, ws_aliases=ws)
