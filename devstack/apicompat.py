"""The API lifecycle check: the control plane's OpenAPI document against the one released.

``relaygate/controlplane/openapi-released.yaml`` is the document as last released for the
current major version (``info.version``). While the major version stays, every change must be
compatible for existing clients: oasdiff (pinned, built by devstack/tools.py) reports each
breaking change (an operation, a response field or a request enum value removed, a new required
parameter, a deprecated operation removed before its ``x-sunset``). A breaking change needs a
major version bump (new paths under /v2, the old ones kept until their sunset), a CHANGELOG.md
entry for the new version, and a new released document.

    python -m devstack.apicompat          # lists breaking changes; exit 1 if there are any
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from devstack import tools

ROOT = Path(__file__).resolve().parent.parent
CURRENT = ROOT / "relaygate" / "controlplane" / "openapi.yaml"
RELEASED = ROOT / "relaygate" / "controlplane" / "openapi-released.yaml"
CHANGELOG = ROOT / "CHANGELOG.md"


def version(doc: Path) -> str:
    return str(yaml.safe_load(doc.read_text())["info"]["version"])


def breaking(base: Path = RELEASED, current: Path = CURRENT) -> list[dict]:
    """oasdiff's breaking changes (error level) from ``base`` to ``current``."""
    done = subprocess.run(
        [tools.binary(tools.OASDIFF), "breaking", str(base), str(current), "--format", "json", "--fail-on", "ERR"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode not in (0, 1) or (done.returncode == 1 and not done.stdout.strip()):
        raise RuntimeError(f"oasdiff failed (exit {done.returncode}): {done.stderr[-2000:]}")
    found = json.loads(done.stdout or "[]") or []
    return [c for c in found if c.get("level") == 3]  # 3: error (2: warning, 1: info)


def problems() -> list[str]:
    """Why the current document may not be released as it is (empty: it may)."""
    now, then = version(CURRENT), version(RELEASED)
    if now.split(".")[0] != then.split(".")[0]:  # a new major version: allowed, if announced
        if f"## [{now}]" not in CHANGELOG.read_text():
            return [f"info.version went from {then} to {now}: CHANGELOG.md needs a '## [{now}]' section"]
        return []
    return [f"{c['id']}: {c.get('operation', '')} {c.get('path', '')}: {c.get('text', '')}".strip() for c in breaking()]


def main() -> int:
    found = problems()
    for p in found:
        print(p)
    if found:
        print(
            f"{len(found)} breaking change(s) against {RELEASED.name} ({version(RELEASED)}): make them compatible, "
            "or bump the major version (docs: CHANGELOG.md)",
            file=sys.stderr,
        )
        return 1
    print(f"compatible with the released {version(RELEASED)} document", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
