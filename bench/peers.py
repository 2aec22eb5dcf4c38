"""``make bench``, second part: the same-run peer table, when the peers are installed.

``../shared/peers/run.py`` (outside this repository: set ``RELAYGATE_PEERS_DIR`` when it lives
elsewhere) measures plain Envoy, relaygate and the other gateways in one run; ``setup.sh`` next to
it installs them into ``$PEERS_HOME`` (default ``<tempdir>/relaygate-peers``, ~15 minutes of CPU
once, mostly Envoy AI Gateway's Go build). This runs it for whichever peers are installed and says
how to install them when none is; the table is printed by run.py and kept in
``bench/results/peers-latest.json``. docs/performance.md records the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What setup.sh leaves behind for each peer (the paths run.py starts them from).
MARKERS = {
    "litellm": "litellm-venv/bin/litellm",
    "portkey": "portkey/node_modules/@portkey-ai/gateway/build/start-server.js",
    "aigw": "aigw/bin/aigw",
}


def installed(home: Path) -> list[str]:
    return [name for name, marker in MARKERS.items() if (home / marker).exists()]


def main(argv: list[str] | None = None) -> int:
    peers_dir = Path(os.environ.get("RELAYGATE_PEERS_DIR", ROOT.parent / "shared" / "peers"))
    home = Path(os.environ.get("PEERS_HOME", Path(tempfile.gettempdir()) / "relaygate-peers"))
    run = peers_dir / "run.py"
    if not run.exists():
        print(f"peer table skipped: no {run} (set RELAYGATE_PEERS_DIR to the peer benchmark)")
        return 0
    peers = installed(home)
    if not peers:
        print(
            f"peer table skipped: no peer installed in {home}; install them with "
            f"RELAYGATE_DIR={ROOT} bash {peers_dir / 'setup.sh'} (see {peers_dir / 'README.md'})"
        )
        return 0
    out = ROOT / "bench" / "results" / "peers-latest.json"
    argv = [
        sys.executable, str(run), "--paths", ",".join(["plain", "relaygate", *peers]), "--keep-going",
        "--out", str(out), *(argv if argv is not None else sys.argv[1:]),
    ]  # fmt: skip
    print(f"peer table: {', '.join(peers)} (from {home}); {' '.join(argv[1:])}", flush=True)
    return subprocess.call(argv, env={**os.environ, "RELAYGATE_DIR": str(ROOT), "PEERS_HOME": str(home)})


if __name__ == "__main__":
    sys.exit(main())
