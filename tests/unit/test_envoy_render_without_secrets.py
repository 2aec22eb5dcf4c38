"""The Envoy container of a sidecar pair gets no secret: its bootstrap renders from the config
documents alone (relaygate/contract/config.py load_without_secrets), and carries none."""

import json
import shutil
from pathlib import Path

from relaygate.envoy import config as envoy_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_static_bootstrap_renders_without_secrets_and_holds_none(tmp_path, monkeypatch):
    for var in ("RELAYGATE_KEY_PEPPER", "RELAYGATE_SECRET_OPENAI", "RELAYGATE_SECRET_ANTHROPIC"):
        monkeypatch.delenv(var, raising=False)
    conf = tmp_path / "config"
    conf.mkdir()
    for name in ("gateway", "workspaces", "upstreams", "keys", "budgets"):
        shutil.copy(ROOT / "config" / f"{name}.yaml", conf)
    out = tmp_path / "bootstrap.json"
    envoy_config.main(["--config-dir", str(conf), "--out", str(out)])
    rendered = json.loads(out.read_text())
    # the same bootstrap as with the secrets at hand (the committed envoy/gateway.json)
    assert rendered == json.loads((ROOT / "envoy" / "gateway.json").read_text())
    text = out.read_text()
    for secret in ("sk-sim-openai", "sk-ant-sim", "demo-pepper-change-me"):
        assert secret not in text
