"""Command-line tools the tests need that neither Debian nor PyPI ships at a pinned version.

helm and OPA are built from source with ``go install`` (each pinned to one release) into a
per-user cache, so `make test` works on a fresh machine without a package repository for them,
and a second run reuses the binaries.

    python -m devstack.tools helm      # prints the path of the helm binary, building it if needed
    python -m devstack.tools opa       # the same for OPA
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN_DIR = Path.home() / ".cache" / "relaygate" / "bin"


@dataclass(frozen=True)
class GoTool:
    name: str
    module: str  # the Go module whose release is pinned
    package: str  # what `go install` builds
    version: str
    check: tuple[str, ...]  # arguments that make the binary print its version and exit 0


HELM = GoTool("helm", "helm.sh/helm/v4", "helm.sh/helm/v4/cmd/helm", "v4.3.2", ("version",))
# OPA checks the platform's Rego (opa check --strict, opa test) and decides beside regorus in the
# differential tests; v1.22.4 is the release the issue measured (~5-9 min to build cold, 60 MB).
OPA = GoTool("opa", "github.com/open-policy-agent/opa", "github.com/open-policy-agent/opa", "v1.22.4", ("version",))
# Generates clients/go from the control plane's OpenAPI document (python -m devstack.clients).
OAPI_CODEGEN = GoTool(
    "oapi-codegen",
    "github.com/oapi-codegen/oapi-codegen/v2",
    "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen",
    "v2.8.2",
    ("-version",),
)
# Breaking-change check of the control plane's OpenAPI document against its released baseline.
OASDIFF = GoTool("oasdiff", "github.com/oasdiff/oasdiff", "github.com/oasdiff/oasdiff", "v1.39.0", ("--version",))
TOOLS = {t.name: t for t in (HELM, OPA, OAPI_CODEGEN, OASDIFF)}


def _log(msg: str) -> None:
    # stderr, so `python -m devstack.tools NAME` prints only the path on stdout.
    print(f"devstack.tools: {msg}", file=sys.stderr, flush=True)


def go_binary(tool: GoTool = HELM) -> str:
    """The Go toolchain: on PATH, or where the official tarball installs it (often not on PATH)."""
    found = shutil.which("go")
    if found:
        return found
    if os.access("/usr/local/go/bin/go", os.X_OK):
        return "/usr/local/go/bin/go"
    raise RuntimeError(
        f"Go is needed to build {tool.name} (go install {tool.package}@{tool.version}) "
        "and was found neither on PATH nor at /usr/local/go/bin/go: install Go 1.24 or newer "
        "(https://go.dev/dl/ or apt-get install golang-go)"
    )


def _usable(tool: GoTool, path: Path) -> bool:
    """The cached binary runs and, when Go can tell (`go version -m`), was built from the pinned
    release: helm built by `go install` reports only "v4.3" itself, so the module version is
    read from the binary's build information instead."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    try:
        subprocess.run([str(path), *tool.check], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        go = go_binary(tool)
    except RuntimeError:
        return True  # cannot check the version without Go; the binary runs, use it
    info = subprocess.run([go, "version", "-m", str(path)], capture_output=True, text=True, timeout=30)
    want = [tool.module, tool.version]
    return any(line.split()[1:3] == want for line in info.stdout.splitlines() if line.strip())


def binary(tool: GoTool) -> str:
    """Path of the pinned tool, built into BIN_DIR on first use.

    A lock file per tool serialises builds: concurrent callers (two test sessions, a build
    started by hand) wait for the one running and then reuse its binary instead of starting a
    second ``go install`` into the same directory.
    """
    path = BIN_DIR / tool.name
    if _usable(tool, path):
        return str(path)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with open(BIN_DIR / f".{tool.name}.lock", "w") as lock:
        if not _try_lock(lock):
            _log(f"another {tool.name} build holds {lock.name}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(tool, path):
            return str(path)
        go = go_binary(tool)
        target = f"{tool.package}@{tool.version}"
        _log(f"building {tool.name}: GOBIN={BIN_DIR} {go} install {target} (a few minutes the first time)")
        env = dict(os.environ, GOBIN=str(BIN_DIR), CGO_ENABLED="0")
        env["PATH"] = str(Path(go).parent) + os.pathsep + env.get("PATH", "")
        built = subprocess.run([go, "install", target], env=env, stdout=sys.stderr, stderr=sys.stderr)
        if built.returncode != 0 or not _usable(tool, path):
            raise RuntimeError(f"go install {target} failed (exit {built.returncode}); see the output above")
        _log(f"{tool.name} built: {path}")
    return str(path)


def helm_binary() -> str:
    return binary(HELM)


def opa_binary() -> str:
    return binary(OPA)


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in TOOLS:
        print(f"usage: python -m devstack.tools {'|'.join(TOOLS)}", file=sys.stderr)
        return 2
    try:
        print(binary(TOOLS[args[0]]))
    except RuntimeError as e:
        print(f"devstack.tools: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
