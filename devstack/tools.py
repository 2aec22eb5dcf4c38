"""Command-line tools the tests need that neither Debian nor PyPI ships at a pinned version.

helm is built from source with ``go install`` (pinned to one release) into a per-user cache, so
`make test` works on a fresh machine without a package repository for helm, and a second run
reuses the binary.

    python -m devstack.tools helm      # prints the path of the helm binary, building it if needed
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN_DIR = Path.home() / ".cache" / "relaygate" / "bin"
HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"


def _log(msg: str) -> None:
    # stderr, so `python -m devstack.tools helm` prints only the path on stdout.
    print(f"devstack.tools: {msg}", file=sys.stderr, flush=True)


def go_binary() -> str:
    """The Go toolchain: on PATH, or where the official tarball installs it (often not on PATH)."""
    found = shutil.which("go")
    if found:
        return found
    if os.access("/usr/local/go/bin/go", os.X_OK):
        return "/usr/local/go/bin/go"
    raise RuntimeError(
        "Go is needed to build helm (go install " + HELM_MODULE + "/cmd/helm@" + HELM_VERSION + ") "
        "and was found neither on PATH nor at /usr/local/go/bin/go: install Go 1.24 or newer "
        "(https://go.dev/dl/ or apt-get install golang-go)"
    )


def _usable(helm: Path) -> bool:
    """The cached binary runs and, when Go can tell (`go version -m`), was built from the pinned
    release: helm built by `go install` reports only "v4.3" itself, so the module version is
    read from the binary's build information instead."""
    if not helm.is_file() or not os.access(helm, os.X_OK):
        return False
    try:
        subprocess.run([str(helm), "version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        go = go_binary()
    except RuntimeError:
        return True  # cannot check the version without Go; the binary runs, use it
    info = subprocess.run([go, "version", "-m", str(helm)], capture_output=True, text=True, timeout=30)
    return any(line.split()[1:3] == [HELM_MODULE, HELM_VERSION] for line in info.stdout.splitlines() if line.strip())


def helm_binary() -> str:
    """Path of helm HELM_VERSION, built into BIN_DIR on first use.

    A lock file serialises builds: concurrent callers (two test sessions, a build started by
    hand) wait for the one running and then reuse its binary instead of starting a second
    ``go install`` into the same directory.
    """
    helm = BIN_DIR / "helm"
    if _usable(helm):
        return str(helm)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with open(BIN_DIR / ".helm.lock", "w") as lock:
        if not _try_lock(lock):
            _log(f"another helm build holds {lock.name}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(helm):
            return str(helm)
        go = go_binary()
        target = f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"
        _log(f"building helm: GOBIN={BIN_DIR} {go} install {target} (a few minutes the first time)")
        env = dict(os.environ, GOBIN=str(BIN_DIR), CGO_ENABLED="0")
        env["PATH"] = str(Path(go).parent) + os.pathsep + env.get("PATH", "")
        built = subprocess.run([go, "install", target], env=env, stdout=sys.stderr, stderr=sys.stderr)
        if built.returncode != 0 or not _usable(helm):
            raise RuntimeError(f"go install {target} failed (exit {built.returncode}); see the output above")
        _log(f"helm built: {helm}")
    return str(helm)


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["helm"]:
        print("usage: python -m devstack.tools helm", file=sys.stderr)
        return 2
    try:
        print(helm_binary())
    except RuntimeError as e:
        print(f"devstack.tools: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
