"""``relaygate``: one command for auditors and platform teams.

    relaygate verify BUNDLE --trusted-key ROOT.pem         check an evidence bundle offline
    relaygate policy check PATH...                          compile platform Rego and workspace documents
    relaygate policy test PATH...                           run their tests
    relaygate policy push FILE [--policy ID] [--staged]     send a workspace document to the control plane
    relaygate policy diff --policy ID [--version N]         which recent calls a version would decide differently

``verify`` is also shipped alone as dist/relaygate-verify.pyz (make verifier), which needs none of
the rest.
"""

from __future__ import annotations

import argparse
import os
import sys


def _policy_parser(sub) -> None:
    p = sub.add_parser("policy", help="check, test, push and diff policies (docs/policy.md)")
    cmds = p.add_subparsers(dest="policy_cmd", required=True)
    for name, text in (
        ("check", "compile platform Rego directories and workspace policy documents (FILE:LINE:COLUMN errors)"),
        ("test", "run platform Rego tests (test_* rules) and workspace documents' tests: cases"),
    ):
        c = cmds.add_parser(name, help=text, description=text)
        c.add_argument(
            "paths", nargs="+", help="directories (platform Rego, and any documents under them) or documents"
        )
        if name == "check":
            c.add_argument("--strict", action="store_true", help="also OPA's strict check (opa on PATH, or --opa)")
            c.add_argument("--opa", help="the OPA binary for the strict check (implies --strict)")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--control-plane",
        default=os.environ.get("RELAYGATE_CONTROL_PLANE", "https://127.0.0.1:8090"),
        help="the control plane's URL (RELAYGATE_CONTROL_PLANE; default https://127.0.0.1:8090, make run's)",
    )
    remote.add_argument(
        "--ca", default=os.environ.get("RELAYGATE_CA"), help="CA file of the control plane's certificate (RELAYGATE_CA)"
    )
    push = cmds.add_parser("push", parents=[remote], help="send a workspace policy document to the control plane")
    push.add_argument("file")
    push.add_argument("--policy", help="the policy's id: add a version to it (default: create a new policy)")
    push.add_argument("--staged", action="store_true", help="add the version without enforcing it (with --policy)")
    push.add_argument("--no-test", action="store_true", help="push even when check or test fails")
    diff = cmds.add_parser("diff", parents=[remote], help="replay recent calls through a policy version's dry run")
    diff.add_argument("--policy", required=True, help="the policy's id")
    diff.add_argument("--version", type=int, help="the version to try (default: the newest)")
    diff.add_argument("--last", type=int, default=50, help="how many of the workspace's latest calls (max 200)")


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["verify"]:
        from relaygate.evidence.cli import main as verify_main

        verify_main(args)
        return
    p = argparse.ArgumentParser(prog="relaygate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("verify", help="verify an evidence bundle offline (relaygate verify --help)", add_help=False)
    _policy_parser(sub)
    a = p.parse_args(args)
    from relaygate.cli import policy

    if a.policy_cmd in ("push", "diff"):
        a.token = os.environ.get("RELAYGATE_TOKEN", "")
        if not a.token:
            p.error("set RELAYGATE_TOKEN to a key of the workspace (or a session token); never on the command line")
    raise SystemExit(policy.main(a))


if __name__ == "__main__":
    main()
