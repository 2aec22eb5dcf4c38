"""A smoke run of the fan-out benchmark (bench/fanout.py): three replicas on a PostgreSQL of its
own, four simulated sidecars long-polling bundles across them, two policy changes; every
sidecar must get each new revision (the bench fails otherwise) and the figures are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fanout_bench_smoke_run(tmp_path):
    out = tmp_path / "fanout.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--clients", "4", "--changes", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["replicas"] == 3 and figures["sidecars"] == 4 and figures["changes"] == 2
    assert 0 < figures["each_sidecar_ms"]["median"] <= figures["all_sidecars_ms"]["max"] < 30_000
    assert run.stdout.count("every sidecar after") == 2
