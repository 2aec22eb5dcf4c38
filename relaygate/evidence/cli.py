"""relaygate: offline tools for auditors. `relaygate verify BUNDLE` checks an evidence bundle.

Needs no network and no server: only the bundle and the control plane's root public key obtained
out of band (--trusted-key). Without it the bundle vouches for itself (anyone can build one that
passes with keys of their own), so the verdict is refused unless --allow-unpinned says that is
understood. --after-checkpoint names a signed checkpoint you already hold: the bundle's tree must
extend it (a stale replay or a fork fails).
Exit status: 0 verified, 1 a check failed, 2 the bundle, key or checkpoint could not be read,
3 every check passed but no key was pinned (and --allow-unpinned was not given).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

UNPINNED = """\
!!! relaygate verify: NO TRUSTED KEY PINNED: trust is only self-asserted.
!!! The bundle's keys were taken from the bundle itself; anyone can build a bundle that passes every
!!! check with keys of their own. Pass --trusted-key ROOT.pem (the control plane's root public key,
!!! obtained out of band: GET /v1/audit/keys over a channel you trust, or from the operator)."""


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="relaygate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="verify an evidence bundle (tar.gz) offline")
    v.add_argument("bundle", help="path to the evidence bundle")
    v.add_argument(
        "--trusted-key",
        help="PEM file with the control plane's root public key you trust; every key "
        "that signed anything in the bundle must chain back to it",
    )
    v.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="without --trusted-key, exit 0 when the checks pass (trust is only self-asserted)",
    )
    v.add_argument(
        "--after-checkpoint",
        metavar="FILE",
        help="a signed checkpoint you already hold (the JSON of GET /v1/audit/checkpoints/latest, or "
        "its signed note): the bundle's tree must be consistent with it and not older",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)

    from relaygate.evidence.signing import load_public_key
    from relaygate.evidence.verify import held_checkpoint, verify_bundle

    try:
        blob = Path(a.bundle).read_bytes()
        key = load_public_key(Path(a.trusted_key).read_bytes()) if a.trusted_key else None
        held = held_checkpoint(Path(a.after_checkpoint).read_text()) if a.after_checkpoint else None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"relaygate verify: {e}", file=sys.stderr)
        raise SystemExit(2)
    report = verify_bundle(blob, key, held)
    if key is None:
        print(UNPINNED, file=sys.stderr)
    if a.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render())
    if not report.ok:
        raise SystemExit(1)
    raise SystemExit(0 if key is not None or a.allow_unpinned else 3)


if __name__ == "__main__":
    main()
