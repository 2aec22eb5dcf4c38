"""relaygate: offline tools for auditors. `relaygate verify BUNDLE` checks an evidence bundle.

Needs no network and no server: only the bundle (and, ideally, the control
plane's public key obtained out of band, passed as --trusted-key).
Exit status: 0 verified, 1 a check failed, 2 the bundle or key could not be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="relaygate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="verify an evidence bundle (tar.gz) offline")
    v.add_argument("bundle", help="path to the evidence bundle")
    v.add_argument("--trusted-key", help="PEM file with the control plane's public key you trust "
                                         "(without it the bundle's own root key is used and reported)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)

    from evidence.signing import load_public_key
    from evidence.verify import verify_bundle
    try:
        blob = Path(a.bundle).read_bytes()
        key = load_public_key(Path(a.trusted_key).read_bytes()) if a.trusted_key else None
    except (OSError, ValueError) as e:
        print(f"relaygate verify: {e}", file=sys.stderr)
        raise SystemExit(2)
    report = verify_bundle(blob, key)
    if a.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render())
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
