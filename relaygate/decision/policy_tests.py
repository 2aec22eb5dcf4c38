"""relaygate-policy-test: run the Rego unit tests (rules named test_*) with the gateway's engine.

Every package whose name ends in ``_test`` is evaluated; each ``test_*`` rule
must be true. Exit status 1 when any test fails or a module does not compile.
"""

from __future__ import annotations

import sys
from pathlib import Path

from relaygate.decision.policy_engine import PolicyError, build_engine, load_policy_sources


def run(policy_dir: Path) -> dict[str, bool]:
    """Result of every test rule, keyed 'package.rule'."""
    modules, data = load_policy_sources(policy_dir, include_tests=True)
    engine = build_engine(modules, data)
    results: dict[str, bool] = {}
    for pkg in engine.get_packages():
        if not pkg.endswith("_test"):
            continue
        out = engine.eval_query(pkg)["result"][0]["expressions"][0]["value"]
        declared = set()
        for text in modules.values():
            if f"package {pkg[len('data.') :]}" in text:
                declared |= {line.split()[0] for line in text.splitlines() if line.startswith("test_")}
        for name in sorted(declared):
            results[f"{pkg[len('data.') :]}.{name}"] = out.get(name) is True
    return results


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    policy_dir = Path(args[0] if args else "policies")
    try:
        results = run(policy_dir)
    except PolicyError as e:
        print(f"policy error: {e}", file=sys.stderr)
        raise SystemExit(1)
    for name, ok in results.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    failed = sum(not ok for ok in results.values())
    print(f"{len(results) - failed} passed, {failed} failed")
    raise SystemExit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
