"""A real OPA (the pinned release devstack.tools builds) on loopback, for the conformance tests.

``OpaServer`` runs ``opa run --server`` with nothing loaded; the tests put policies and data in
through OPA's REST API (with opa-python-client) and query it beside regorus. ``check_strict`` and
``run_tests`` run ``opa check --strict`` and ``opa test`` on a directory of Rego.

    python -m devstack.opa check policies/     # opa check --strict, then opa test
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from devstack.processes import free_port, wait_until
from devstack.tools import OPA, opa_binary

OPA_VERSION = OPA.version


def check_strict(*paths: Path | str) -> subprocess.CompletedProcess:
    """``opa check --strict`` (unused variables and imports, deprecated builtins, shadowing)."""
    return subprocess.run(
        [opa_binary(), "check", "--strict", *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def run_tests(*paths: Path | str) -> subprocess.CompletedProcess:
    """``opa test -v``: every ``test_*`` rule of the given files and directories."""
    return subprocess.run([opa_binary(), "test", "-v", *map(str, paths)], capture_output=True, text=True, timeout=300)


class OpaServer:
    """``opa run --server`` on 127.0.0.1, logging to ``log``; empty until the caller loads it."""

    def __init__(self, log: Path, port: int = 0, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.log = Path(log)
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
            return r.status == 200

    def start(self) -> "OpaServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [opa_binary(), "run", "--server", "--addr", f"127.0.0.1:{self.port}", "--log-level", "error",
             *self.extra_args],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        fh.close()
        wait_until(self._healthy, 30, "opa", self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "check":
        sys.exit("usage: python -m devstack.opa check DIR...")
    rc = 0
    for step in (check_strict, run_tests):
        out = step(*args[1:])
        print(out.stdout + out.stderr, end="")
        rc = rc or out.returncode
    sys.exit(rc)


if __name__ == "__main__":
    main()
