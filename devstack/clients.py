"""The control plane's client libraries, generated from its committed OpenAPI document.

Three well-kept generators, each pinned:

- Python: openapi-python-client (PyPI, in the test extras) -> clients/python/relaygate_client,
  formatted with the repository's pinned ruff;
- TypeScript: openapi-typescript (npm, clients/typescript/package-lock.json) ->
  clients/typescript/src/schema.d.ts, used through openapi-fetch;
- Go: oapi-codegen (``go install``, devstack/tools.py) -> clients/go/relaygate.gen.go;
- the fleet-operations gRPC service: grpcio-tools' protoc (pinned to grpcio's version) ->
  relaygate/controlplane/fleetops/fleet_operations_pb2{,_grpc}.py{,i} from the .proto beside them.

    python -m devstack.clients generate   # rewrite the generated files from the document
    python -m devstack.clients check      # regenerate into a scratch dir; exit 1 if anything differs

``check`` runs in `make test` (tests/system/test_client_libraries.py), so a change to the API
document that is not regenerated fails the build, as does a hand edit of a generated file.
"""

from __future__ import annotations

import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack import tools

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "relaygate" / "controlplane" / "openapi.yaml"
CLIENTS = ROOT / "clients"
PY_PACKAGE = "relaygate_client"
TS_DIR = CLIENTS / "typescript"
# What the generators own (relative to clients/); everything else there is written by hand.
GENERATED = ("python", "typescript/src/schema.d.ts", "go/relaygate.gen.go")
PROTO = Path("relaygate/controlplane/fleetops/fleet_operations.proto")  # relative to ROOT
PROTO_OUT = tuple(str(PROTO.with_name(PROTO.stem + s)) for s in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def _log(msg: str) -> None:
    print(f"devstack.clients: {msg}", file=sys.stderr, flush=True)


def _run(argv: list[str], cwd: Path, env: dict | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (the venv's openapi-python-client, ruff)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: make .venv/.installed-stamp installs the test extras")
    return found


def npm_ready() -> None:
    """clients/typescript/node_modules as its lock file pins it (npm ci when missing or stale)."""
    stamp = TS_DIR / "node_modules" / ".package-lock.json"
    lock = TS_DIR / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    _log("npm ci in clients/typescript (openapi-typescript, openapi-fetch, typescript, tsx)")
    _run(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR)


def generate_into(out: Path) -> None:
    """Write every generated file under ``out`` (laid out as clients/ is)."""
    out.mkdir(parents=True, exist_ok=True)
    # Python: the generator refuses to write into an existing directory without --overwrite.
    py = out / "python"
    if py.exists():
        shutil.rmtree(py)
    _run(
        [
            _bin("openapi-python-client"),
            "generate",
            "--path",
            str(SPEC),
            "--output-path",
            str(py),
            "--config",
            str(CLIENTS / "python-generator.yaml"),
            "--meta",
            "uv",
        ],
        ROOT,
    )
    _run([_bin("ruff"), "check", "--fix-only", "--quiet", "."], py)
    _run([_bin("ruff"), "format", "--quiet", "."], py)
    # TypeScript: types only; openapi-fetch is the runtime.
    npm_ready()
    ts = out / "typescript" / "src"
    ts.mkdir(parents=True, exist_ok=True)
    _run(
        [
            str(TS_DIR / "node_modules" / ".bin" / "openapi-typescript"),
            str(SPEC),
            "--empty-objects-unknown",
            "-o",
            str(ts / "schema.d.ts"),
        ],
        TS_DIR,
    )
    # Go: models and a client, one file.
    go = out / "go"
    go.mkdir(parents=True, exist_ok=True)
    shutil.copy(CLIENTS / "go" / "oapi-codegen.yaml", go / "oapi-codegen.yaml")
    _run([tools.binary(tools.OAPI_CODEGEN), "-config", "oapi-codegen.yaml", str(SPEC)], go)
    # gRPC: stubs for the server and for Python clients; imports resolve from the repository root.
    grpc_out = out / "grpc"
    grpc_out.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(ROOT),
            f"--python_out={grpc_out}",
            f"--grpc_python_out={grpc_out}",
            f"--pyi_out={grpc_out}",
            str(ROOT / PROTO),
        ],
        ROOT,
    )


def _files(base: Path, rel: str) -> dict[str, Path]:
    p = base / rel
    if p.is_file():
        return {rel: p}
    if not p.is_dir():
        return {}
    return {
        str(f.relative_to(base)): f
        for f in sorted(p.rglob("*"))
        if f.is_file() and "__pycache__" not in f.parts and ".ruff_cache" not in f.parts
    }


def _pairs(fresh: Path):
    """(committed files, freshly generated files) per generated unit, by the same relative names."""
    for rel in GENERATED:
        have, want = _files(CLIENTS, rel), _files(fresh, rel)
        yield {f"clients/{k}": v for k, v in have.items()}, {f"clients/{k}": v for k, v in want.items()}
    for rel in PROTO_OUT:
        yield {rel: ROOT / rel} if (ROOT / rel).exists() else {}, {rel: fresh / "grpc" / rel}


def differences(fresh: Path) -> list[str]:
    """What differs between the committed generated files and a fresh generation in ``fresh``."""
    out: list[str] = []
    for have, want in _pairs(fresh):
        for name in sorted(set(have) | set(want)):
            if name not in want:
                out.append(f"{name}: not produced by the generator (remove it)")
            elif name not in have:
                out.append(f"{name}: missing (generate it)")
            elif not filecmp.cmp(have[name], want[name], shallow=False):
                diff = difflib.unified_diff(
                    have[name].read_text().splitlines(),
                    want[name].read_text().splitlines(),
                    f"committed/{name}",
                    f"generated/{name}",
                    lineterm="",
                    n=1,
                )
                out.append(f"{name} differs:\n" + "\n".join(list(diff)[:40]))
    return out


def generate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp))
        for rel in GENERATED:
            src, dst = Path(tmp) / rel, CLIENTS / rel
            if src.is_dir():
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".ruff_cache"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
        for rel in PROTO_OUT:
            shutil.copy(Path(tmp) / "grpc" / rel, ROOT / rel)
    _log(f"clients/ regenerated from {SPEC.relative_to(ROOT)}, the gRPC stubs from {PROTO}")


def check() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp))
        return differences(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["generate"], ["check"]):
        print(__doc__, file=sys.stderr)
        return 2
    os.chdir(ROOT)
    if args == ["generate"]:
        generate()
        return 0
    diffs = check()
    for d in diffs:
        print(d)
    if diffs:
        print("the client libraries are stale: python -m devstack.clients generate", file=sys.stderr)
        return 1
    _log("clients/ match the OpenAPI document")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
