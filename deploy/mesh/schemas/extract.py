"""Vendor one kind's openAPIV3Schema out of a CustomResourceDefinition file (README.md here).

    python deploy/mesh/schemas/extract.py CRD.yaml KIND VERSION OUT.json [--only-spec FIELD ...]

--only-spec keeps only those properties of .spec (for a huge schema of which the manifests
use one corner, e.g. EnvoyProxy's telemetry); the validator then refuses any other spec field.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def extract(crd_file: Path, kind: str, version: str, only_spec: list[str] | None = None) -> dict:
    for doc in yaml.safe_load_all(crd_file.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition" or doc["spec"]["names"]["kind"] != kind:
            continue
        for v in doc["spec"]["versions"]:
            if v["name"] == version:
                schema = v["schema"]["openAPIV3Schema"]
                if only_spec:
                    spec = schema["properties"]["spec"]
                    spec["properties"] = {k: spec["properties"][k] for k in only_spec}
                    spec.pop("required", None)
                    spec.pop("x-kubernetes-validations", None)
                return {
                    "group": doc["spec"]["group"],
                    "kind": kind,
                    "version": version,
                    "openAPIV3Schema": schema,
                }
        raise SystemExit(f"{crd_file}: {kind} has no version {version}")
    raise SystemExit(f"{crd_file}: no CustomResourceDefinition of kind {kind}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("crd_file", type=Path)
    p.add_argument("kind")
    p.add_argument("version")
    p.add_argument("out", type=Path)
    p.add_argument("--only-spec", nargs="+")
    a = p.parse_args()
    a.out.write_text(
        json.dumps(extract(a.crd_file, a.kind, a.version, a.only_spec), sort_keys=True, separators=(",", ":")) + "\n"
    )


if __name__ == "__main__":
    main()
