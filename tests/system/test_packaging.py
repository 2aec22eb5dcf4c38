"""The wheel is one namespace: `relaygate` and its data, nothing of devstack/, bench/ or tests/, and
every console script names a function that exists."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_one_namespace_with_its_data_and_working_console_scripts(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("relaygate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"relaygate", wheel.name.split("-py")[0] + ".dist-info"}
    for data in (
        "relaygate/controlplane/openapi.yaml",
        "relaygate/controlplane/migrations/env.py",
        "relaygate/controlplane/migrations/script.py.mako",
        "relaygate/envoy/response_digest.lua",
        "relaygate/envoy/preauth_guard.lua",
    ):
        assert data in names, data
    assert sum(n.startswith("relaygate/controlplane/migrations/versions/") for n in names) == len(
        list((ROOT / "relaygate/controlplane/migrations/versions").glob("*.py"))
    )
    ep = configparser.ConfigParser()
    ep.read_string(zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode())
    scripts = dict(ep["console_scripts"])
    assert set(scripts) == {
        "relaygate",
        "relaygate-controlplane",
        "relaygate-envoy",
        "relaygate-extproc",
        "relaygate-keys",
        "relaygate-policy-test",
        "relaygate-provider-sim",
    }
    for target in scripts.values():
        module, func = target.split(":")
        assert module.startswith("relaygate.") and callable(getattr(importlib.import_module(module), func))
