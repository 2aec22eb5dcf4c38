"""docs/observability.md lists every metric relaygate exports, and nothing else: a metric added
without its line, or a line left for a metric that is gone, fails here."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from prometheus_client import REGISTRY

import relaygate

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "observability.md").read_text()
EXPOSED_SUFFIX = {"counter": "_total", "info": "_info"}  # how prometheus_client names what it serves


def _exported() -> dict[str, str]:
    """Every relaygate_* / gen_ai_* family any relaygate module registers: exposed name -> type."""
    for m in pkgutil.walk_packages(relaygate.__path__, "relaygate."):
        if ".migrations" not in m.name:
            importlib.import_module(m.name)
    out = {}
    for collector in list(REGISTRY._collector_to_names):
        for fam in collector.describe() if hasattr(collector, "describe") else []:
            if fam.name.startswith(("relaygate_", "gen_ai_")):
                out[fam.name + EXPOSED_SUFFIX.get(fam.type, "")] = fam.type
    return out


def _documented() -> dict[str, str]:
    rows = re.findall(r"^\| `((?:relaygate|gen_ai)_\w+)` \| (\w+) \|", DOC, re.M)
    return dict(rows)


def test_every_exported_metric_is_documented_with_its_type_and_nothing_else():
    exported, documented = _exported(), _documented()
    assert len(exported) > 15
    assert set(exported) - set(documented) == set(), "metrics missing from docs/observability.md"
    assert set(documented) - set(exported) == set(), "docs/observability.md names metrics that do not exist"
    assert {k: v for k, v in documented.items()} == exported
