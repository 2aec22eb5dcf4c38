"""Container images for relaygate, built offline with podman, and static checks of their definitions.

    python -m devstack.images build [--only gateway|controlplane|provider-sim]
    python -m devstack.images check

No image registry is reachable where relaygate is built and tested, so nothing is pulled: the
base is a Debian bookworm root filesystem made by ``debootstrap`` from Debian's own packages
(with Debian's python3, the 3.11 the project targets) and imported as
``localhost/relaygate-base:bookworm``; Python packages come from a local wheelhouse built outside
the image with the project's pins (pyproject.toml, regorus hash-pinned in
requirements/regorus.txt, every other dependency at the version of the development venv the tests
run in) and installed inside with ``pip install --no-index --require-hashes``. ``podman build``
runs with ``--network=none`` so a Containerfile that tried to fetch anything would fail here
rather than silently depend on the network.

Everything slow is cached under ~/.cache/relaygate/images: the root filesystem (by suite, mirror
and package list), the dependency wheels (by a hash of pyproject.toml, the requirements, the
venv's versions and the base), the project wheel (by a hash of its sources), and the images
themselves (a label records the digest of each one's inputs; an image whose inputs are unchanged
is not rebuilt). Cold: ~1.5 min (debootstrap ~50 s, the venv layer ~30 s); nothing changed: ~1.5 s;
a source change: ~30 s (only the project wheel is reinstalled).

Debian packages this needs (root): podman, debootstrap, runc (see below), and catatonit, from
which podman builds its pod infra image (localhost/podman-pause) when no registry can supply one.

Two properties of this sandbox (a firecracker VM, cgroup v1 with a cgroup2 hierarchy beside it)
shape how podman is run, both set through a containers.conf of our own (``CONTAINERS_CONF``),
never by editing /etc/containers:

- crun 1.8 refuses hybrid cgroups ("crun: cgroups in hybrid mode not supported, drop all
  controllers from cgroupv2": the unified hierarchy still holds ``hugetlb``), so runc is used
  when the hierarchy is hybrid;
- root here lacks CAP_SYS_RESOURCE, so the rlimits podman asks for by default (RLIMIT_NOFILE
  1048576, RLIMIT_NPROC above the limit podman's own conmon runs with) cannot be set ("setrlimit
  `RLIMIT_NOFILE`: Operation not permitted"); the defaults become limits that can be.

``check`` reads the Containerfiles without podman: numeric non-root USER, no remote ADD, no
``latest`` or untagged base, exec-form ENTRYPOINT/CMD/HEALTHCHECK, pip only from the local
wheelhouse with hashes, no fetching tool in a RUN, and per deployable a HEALTHCHECK, STOPSIGNAL,
the ports of the deploy interface EXPOSEd and the OCI labels.

Running them: podman 4.3's ``--secret`` cannot mount into a ``--read-only`` container (podman
issue #15541: "open .../run/secrets/NAME: read-only file system"); mount secret files as a
read-only directory at /run/secrets instead (what compose and Kubernetes Secret volumes do).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "deploy" / "images"
CACHE = Path(os.environ.get("RELAYGATE_IMAGE_CACHE", Path.home() / ".cache" / "relaygate" / "images"))

SUITE = "bookworm"
# Debian packages of the root filesystem beyond minbase: the interpreter, and the CA bundle
# that Envoy and Python use for providers and an https control plane.
BASE_PACKAGES = ("python3", "ca-certificates")
BASE_IMAGE = f"localhost/relaygate-base:{SUITE}"
# Bump when the way the root filesystem is made changes (cleanup, packages): new cache key.
ROOTFS_RECIPE = 1

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
RUNTIME_IMAGE = f"localhost/relaygate/runtime:{VERSION}"


@dataclass(frozen=True)
class Image:
    name: str
    containerfile: str
    ports: tuple[int, ...]  # what the deploy interface says the image serves (EXPOSE)

    @property
    def tag(self) -> str:
        return f"localhost/relaygate/{self.name}:{VERSION}"


IMAGES = {
    i.name: i
    for i in (
        Image("gateway", "gateway.Containerfile", (8080, 8082, 9464)),
        Image("controlplane", "controlplane.Containerfile", (8090, 18000)),
        Image("provider-sim", "provider-sim.Containerfile", (8000,)),
    )
}
BASE_CONTAINERFILE = "base.Containerfile"
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.licenses",
)
# Files of config/ that hold secrets or demo credentials: never copied into an image.
SECRET_CONFIG_FILES = ("secrets.yaml", "demo-keys.txt")


def say(msg: str) -> None:
    print(f"[images] {msg}", flush=True)


class Step:
    """Prints a step and how long it took (cold builds take minutes; say where they go)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> Step:
        self.t0 = time.monotonic()
        say(f"{self.what} ...")
        return self

    def __exit__(self, *exc) -> None:
        say(f"{self.what}: {'failed' if exc[0] else 'done'} in {time.monotonic() - self.t0:.1f} s")


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()[:16]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        out = f"{e.stdout or ''}{e.stderr or ''}" if kw.get("text") else ""
        raise SystemExit(f"command failed ({e.returncode}): {' '.join(cmd)}\n{out[-4000:]}") from None


# -- podman -------------------------------------------------------------------------------------


def _hybrid_cgroups() -> bool:
    """cgroup v1 controllers with a cgroup2 hierarchy that still holds controllers beside them."""
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    return controllers.exists() and bool(controllers.read_text().split())


def containers_conf() -> Path:
    """Our containers.conf: an OCI runtime that works here and rlimits this process may set."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    # conmon runs with RLIMIT_NPROC 32768 here whatever the shell has, and the container's limit
    # cannot be raised above its parent's: 4096 processes+threads per uid is plenty for a gateway.
    nproc = 4096 if nproc == resource.RLIM_INFINITY else min(nproc, 4096)
    lines = ["[containers]", f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]']
    if _hybrid_cgroups():
        if not shutil.which("runc"):
            raise SystemExit(
                "cgroups are hybrid here (v1 controllers and a cgroup2 hierarchy holding "
                f"{Path('/sys/fs/cgroup/unified/cgroup.controllers').read_text().strip()}): crun refuses that "
                "('cgroups in hybrid mode not supported'); install runc (apt-get install runc)"
            )
        lines += ["[engine]", 'runtime = "runc"']
    path = CACHE / "containers.conf"
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman(*args: str, check: bool = True, timeout: float = 600, quiet: bool = True) -> subprocess.CompletedProcess:
    """Run podman with our containers.conf; stdout/stderr captured as text (unless not quiet)."""
    cmd = ["podman", *args]
    r = subprocess.run(
        cmd, env=podman_env(), text=True, capture_output=quiet, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {r.returncode}\n{(r.stdout or '')[-3000:]}{(r.stderr or '')[-3000:]}")
    return r


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def image_label(ref: str, label: str) -> str | None:
    r = podman("image", "inspect", "--format", "{{json .Labels}}", ref, check=False)
    if r.returncode != 0:
        return None
    return (json.loads(r.stdout) or {}).get(label)


# -- the base root filesystem ---------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian archive apt uses here (deb822 .sources or one-line .list), for debootstrap."""
    if os.environ.get("RELAYGATE_DEBIAN_MIRROR"):
        return os.environ["RELAYGATE_DEBIAN_MIRROR"]
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        candidates: list[tuple[str, list[str]]] = []
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, v in (ln.split(":", 1) for ln in stanza.splitlines() if ":" in ln and not ln.startswith("#"))
                )
                for uri in fields.get("uris", "").split():
                    candidates.append((uri, fields.get("suites", "").split()))
        else:
            for ln in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", ln)
                if m:
                    candidates.append((m.group(1), [m.group(2)]))
        for uri, suites in candidates:
            if SUITE in suites and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def base_rootfs(packages: tuple[str, ...] = BASE_PACKAGES) -> Path:
    """A tarball of a minbase bookworm with python3: made once by debootstrap, then cached.
    (``packages``: the compose stand-ins' root filesystem passes its own list; see the end of this file.)"""
    mirror = debian_mirror()
    key = _sha(SUITE.encode(), mirror.encode(), ",".join(packages).encode(), str(ROOTFS_RECIPE).encode())
    tar = CACHE / "base" / f"{SUITE}-{key}.tar"
    if tar.exists():
        return tar
    if os.geteuid() != 0:
        raise SystemExit("debootstrap needs root (it creates device nodes and chroots to configure packages)")
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap is missing: apt-get install debootstrap")
    work = CACHE / "base" / f"rootfs-{key}"
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    with Step(f"debootstrap --variant=minbase {SUITE} from {mirror} (+ {', '.join(packages)})"):
        log = CACHE / "base" / "debootstrap.log"
        with log.open("w") as out:
            r = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(work), mirror],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if r.returncode != 0:
            raise SystemExit(f"debootstrap failed ({r.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    # What a runtime image never needs: package caches and indexes, documentation (the
    # copyright files stay: they are the licences), man pages, logs of the bootstrap.
    for pattern in ("var/cache/apt/*", "var/lib/apt/lists/*", "usr/share/man/*", "usr/share/info/*", "var/log/*"):
        for p in work.glob(pattern):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in (work / "usr/share/doc").glob("*/*"):
        if p.name != "copyright":
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    partial = tar.with_suffix(".partial")
    _run(["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."])
    partial.rename(tar)
    shutil.rmtree(work)
    return tar


def import_base() -> None:
    tar = base_rootfs()
    if image_label(BASE_IMAGE, "io.relaygate.rootfs") == tar.name:
        return
    with Step(f"podman import {tar.name} as {BASE_IMAGE}"):
        podman(
            "import",
            "--change",
            f"LABEL io.relaygate.rootfs={tar.name}",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            str(tar),
            BASE_IMAGE,
        )


# -- the wheelhouse -------------------------------------------------------------------------------


# The development venv (its pip builds the project wheel, its versions pin the dependencies' own
# dependencies), whichever interpreter runs this module.
VENV_PYTHON = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable


def _pip(*args: str) -> None:
    _run([VENV_PYTHON, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True)


def _wheel_name_version(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


# Installed again after everything else (base.Containerfile): xds-protos ships an old copy of the
# OpenTelemetry protos at the same paths, and the last package installed owns the files.
INSTALL_LAST = ("opentelemetry-proto",)


def _write_lock(directory: Path) -> Path:
    """requirements.lock: every wheel of the directory as name==version with its sha256 (and
    install-last.lock: the INSTALL_LAST ones among them)."""
    lines, last = [], []
    for whl in sorted(directory.glob("*.whl")):
        name, version = _wheel_name_version(whl)
        line = f"{name}=={version} --hash=sha256:{hashlib.sha256(whl.read_bytes()).hexdigest()}"
        lines.append(line)
        if name in INSTALL_LAST:
            last.append(line)
    lock = directory / "requirements.lock"
    lock.write_text("\n".join(lines) + "\n")
    (directory / "install-last.lock").write_text("\n".join(last) + "\n")
    return lock


def runtime_requirements() -> tuple[list[str], str]:
    """pyproject's dependencies (regorus aside: it comes hash-pinned from requirements/regorus.txt)
    and constraints pinning every other package at the version of the development venv."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    deps = [d for d in deps if not d.lower().startswith("gordon-to-regorus")]
    frozen = _run(
        [VENV_PYTHON, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    ).stdout
    constraints = "\n".join(ln for ln in frozen.splitlines() if ln and not ln.startswith(("#", "-e")))
    return deps, constraints + "\n"


def _host_pip_settings() -> tuple[list[str], dict[str, str]]:
    """How this machine reaches the package index, for pip inside a container: the CA bundle
    pip trusts here (an intercepting proxy's CA lives in it) and the index/proxy variables."""
    mounts: list[str] = []
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.lower().endswith("_proxy")}
    env.pop("PIP_FIND_LINKS", None)  # a host directory
    ca = Path(env.pop("PIP_CERT", None) or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        mounts = ["-v", f"{ca.resolve()}:/run/host-ca.pem:ro"]
        env["PIP_CERT"] = "/run/host-ca.pem"
    return mounts, env


def deps_wheelhouse() -> Path:
    """Wheels of every runtime dependency, plus pip itself (to install them; not left in the image).

    The dependencies are resolved by the image's own interpreter (Debian's python3 3.11.2, in a
    container of the base image) and not by this venv's: pip evaluates environment markers
    against the interpreter it runs on, and some differ (redis needs async-timeout below 3.11.3).
    """
    deps, constraints = runtime_requirements()
    regorus = (ROOT / "requirements/regorus.txt").read_text()
    pip_version = _run(
        [VENV_PYTHON, "-c", "import pip; print(pip.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    base_key = image_label(BASE_IMAGE, "io.relaygate.rootfs") or ""
    key = _sha(
        "\n".join(deps).encode(),
        constraints.encode(),
        regorus.encode(),
        pip_version.encode(),
        base_key.encode(),
        ",".join(INSTALL_LAST).encode(),
    )
    out = CACHE / "wheels" / f"deps-{key}"
    if (out / "requirements.lock").exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "tools").mkdir(parents=True)
    with Step(f"wheelhouse of the runtime dependencies ({len(deps)} pinned + theirs), resolved by the image's python"):
        (partial / "requirements.in").write_text("\n".join(deps) + "\n")
        (partial / "constraints.txt").write_text(constraints)
        shutil.copy2(ROOT / "requirements/regorus.txt", partial / "regorus.txt")
        _pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(partial / "tools"), f"pip=={pip_version}")
        [pip_whl] = (partial / "tools").glob("pip-*.whl")
        pip_whl.rename(partial / "tools" / "pip.whl")  # run as `python pip.whl/pip`: no pip in the image
        mounts, env = _host_pip_settings()
        pip = [
            "python3",
            "/w/tools/pip.whl/pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
        ]
        pip += ["--no-cache-dir", "-d", "/w"]
        for args in (
            ["--no-deps", "--require-hashes", "-r", "/w/regorus.txt"],
            ["-r", "/w/requirements.in", "-c", "/w/constraints.txt"],
        ):
            env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
            r = podman(
                "run", "--rm", "--network=host", *mounts, *env_args, "-v", f"{partial}:/w", BASE_IMAGE, *pip, *args,
                check=False, timeout=900,
            )  # fmt: skip
            if r.returncode != 0:
                raise SystemExit(f"pip download in {BASE_IMAGE} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        lock = _write_lock(partial)
        name, pinned = re.search(r"^([\w.-]+==[\w.]+)\s.*--hash=sha256:([0-9a-f]{64})", regorus, re.M).groups()
        if f"{name} --hash=sha256:{pinned}" not in lock.read_text():
            raise SystemExit(f"the wheelhouse's {name} is not the one requirements/regorus.txt pins ({pinned})")
    partial.rename(out)
    return out


def _project_sources() -> list[Path]:
    files = [ROOT / "pyproject.toml"]
    files += sorted(
        p
        for p in (ROOT / "relaygate").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    return files


def project_wheelhouse() -> Path:
    """The relaygate wheel, built from a clean copy of the sources (an in-tree build would reuse
    ./build/lib, which keeps files deleted from the sources)."""
    files = _project_sources()
    key = _sha(*(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() for f in files))
    out = CACHE / "wheels" / f"project-{key}"
    if (out / "requirements.lock").exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    src = partial / "src"
    for f in files:
        dest = src / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    with Step("relaygate wheel"):
        _pip("wheel", "-q", "--no-deps", "-w", str(partial), str(src))
    shutil.rmtree(src)
    _write_lock(partial)
    for old in (CACHE / "wheels").glob("project-*"):
        if old != partial:
            shutil.rmtree(old)  # one project wheel at a time: the sources change on every edit
    partial.rename(out)
    return out


# -- the build context ----------------------------------------------------------------------------


def stage_context(deps: Path, project: Path) -> Path:
    """The directory podman builds from: wheels, policies, config without its secrets, probe.py."""
    ctx = CACHE / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)

    def link_tree(src: Path, dest: Path) -> None:
        dest.mkdir(parents=True)
        for f in src.iterdir():
            if f.is_dir():
                link_tree(f, dest / f.name)
            elif f.suffix in (".whl", ".lock"):
                os.link(f, dest / f.name)

    link_tree(deps, ctx / "wheels" / "deps")
    shutil.move(ctx / "wheels" / "deps" / "tools", ctx / "wheels" / "tools")
    link_tree(project, ctx / "wheels" / "project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "policies", ctx / "policies", ignore=ignore)
    shutil.copytree(ROOT / "config", ctx / "config", ignore=shutil.ignore_patterns(*SECRET_CONFIG_FILES))
    shutil.copy2(IMAGES_DIR / "probe.py", ctx / "probe.py")
    return ctx


def _revision() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


INPUTS_LABEL = "io.relaygate.inputs"


def _image_id(ref: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def context_key(ctx: Path) -> str:
    """A digest of what a build reads from the context. Wheels count through their lock files
    (which hold every wheel's sha256), so 250 MB are not read again on every run."""
    parts = []
    for f in sorted(p for p in ctx.rglob("*") if p.is_file()):
        rel = str(f.relative_to(ctx))
        if f.suffix == ".whl" and rel.startswith(("wheels/deps/", "wheels/project/")):
            continue
        parts.append(rel.encode() + b"\0" + f.read_bytes())
    return _sha(*parts)


def podman_build(containerfile: Path, tag: str, ctx: Path, parent: str, labels: dict[str, str] | None = None) -> bool:
    """Build ``tag`` unless an image of that tag was built from the same inputs (the Containerfile,
    the context, the parent image's id and the labels); True when it built. podman's layer cache
    alone would also skip the work, but only after hashing the whole venv again (~12 s)."""
    labels = dict(labels or {})
    labels[INPUTS_LABEL] = _sha(
        containerfile.read_bytes(), context_key(ctx).encode(), _image_id(parent).encode(), json.dumps(labels).encode()
    )
    if image_label(tag, INPUTS_LABEL) == labels[INPUTS_LABEL]:
        say(f"{tag}: up to date")
        return False
    args = [
        "build",
        "--network=none",  # offline: a step that fetches anything fails here
        "--pull=never",
        "--format=docker",  # the OCI format drops HEALTHCHECK
        "--layers",
        f"--build-arg=VERSION={VERSION}",
        "-f",
        str(containerfile),
        "-t",
        tag,
    ]
    for k, v in labels.items():
        args.append(f"--label={k}={v}")
    with Step(f"podman build {tag}"):
        r = podman(*args, str(ctx), check=False, timeout=1800)
        if r.returncode != 0:
            raise SystemExit(f"podman build {containerfile.name} failed:\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}")
    return True


def build(only: list[str] | None = None) -> dict[str, str]:
    """Build the images (all, or those named) and return {name: tag}."""
    names = only or list(IMAGES)
    for n in names:
        if n not in IMAGES:
            raise SystemExit(f"unknown image {n!r}: one of {', '.join(IMAGES)}")
    problems = check()
    if problems:
        raise SystemExit("the image definitions fail their static checks:\n" + "\n".join(problems))
    t0 = time.monotonic()
    import_base()
    deps, project = deps_wheelhouse(), project_wheelhouse()
    ctx = stage_context(deps, project)
    podman_build(IMAGES_DIR / BASE_CONTAINERFILE, RUNTIME_IMAGE, ctx, BASE_IMAGE)
    revision = _revision()
    for n in names:
        podman_build(
            IMAGES_DIR / IMAGES[n].containerfile,
            IMAGES[n].tag,
            ctx,
            RUNTIME_IMAGE,
            {"org.opencontainers.image.revision": revision},
        )
    say(f"{', '.join(IMAGES[n].tag for n in names)} ready in {time.monotonic() - t0:.1f} s")
    return {n: IMAGES[n].tag for n in names}


# -- static checks --------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def parse_containerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined (comments inside a continuation skipped)."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if not buf:
            start = n
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        kw, _, rest = buf.partition(" ")
        out.append(Instruction(start, kw.upper(), rest.strip()))
        buf = ""
    if buf:
        kw, _, rest = buf.partition(" ")
        out.append(Instruction(start, kw.upper(), rest.strip()))
    return out


def _exec_form(args: str) -> bool:
    try:
        v = json.loads(args)
    except ValueError:
        return False
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)


def _labels(args: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r'([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S+)', args):
        v = m.group(2)
        out[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return out


# Tools that reach the network from a RUN step (the build runs with --network=none anyway).
FETCHERS = re.compile(r"\b(curl|wget|apt-get|apt|aptitude|git|pip\s+download)\b")


def check_containerfile(path: Path, ports: tuple[int, ...] | None, inherited_labels: dict[str, str]) -> list[str]:
    """Problems of one Containerfile; ``ports`` is None for the shared base (not deployed itself)."""
    text = path.read_text()
    ins = parse_containerfile(text)
    where = path.name
    problems: list[str] = []
    stages: set[str] = set()
    for i in ins:
        at = f"{where}:{i.line}"
        if i.keyword == "FROM":
            words = [w for w in i.args.split() if not w.startswith("--")]
            image = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if image.lower() in stages:
                continue
            name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
            if "@sha256:" not in image and (not tag or tag == "latest"):
                problems.append(f"{at}: FROM {image}: name an explicit tag (or digest), never latest")
            if "$" in image:
                problems.append(
                    f"{at}: FROM {image}: no build-argument in the base image (what is built must be read here)"
                )
            if not image.startswith("localhost/"):
                problems.append(f"{at}: FROM {image}: only local images (no registry is used: localhost/...)")
        elif i.keyword == "ADD":
            if re.search(r"(https?|ftp)://|git@|\.git\b", i.args):
                problems.append(f"{at}: ADD from a URL: everything comes from the build context (COPY)")
            else:
                problems.append(f"{at}: ADD: use COPY (ADD unpacks archives and fetches URLs)")
        elif i.keyword in ("ENTRYPOINT", "CMD") and not _exec_form(i.args):
            problems.append(
                f"{at}: {i.keyword} in shell form: use the exec form (JSON array) so signals reach the process"
            )
        elif i.keyword == "HEALTHCHECK":
            cmd = re.split(r"\bCMD\b", i.args, maxsplit=1)
            if i.args.strip().upper() != "NONE" and (len(cmd) != 2 or not _exec_form(cmd[1].strip())):
                problems.append(f"{at}: HEALTHCHECK CMD in shell form: exec form (no shell is needed at run time)")
        elif i.keyword == "RUN":
            body = i.args
            if FETCHERS.search(body):
                problems.append(f"{at}: RUN fetches or installs from the network: use the local wheelhouse")
            if re.search(r"\bpip\b", body):
                if re.search(r"\binstall\b", body) and not (
                    "--no-index" in body and re.search(r"--find-links\W+/wheels", body) and "--require-hashes" in body
                ):
                    problems.append(
                        f"{at}: pip install must use --no-index --find-links /wheels/... --require-hashes (the local wheelhouse)"
                    )
    users = [i for i in ins if i.keyword == "USER"]
    if not users:
        problems.append(f"{where}: no USER: the image would run as root")
    else:
        last = users[-1]
        m = re.fullmatch(r"(\d+)(?::(\d+))?", last.args)
        if not m:
            problems.append(
                f"{where}:{last.line}: USER {last.args}: numeric uid:gid (Kubernetes runAsNonRoot checks numbers)"
            )
        elif int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
            problems.append(f"{where}:{last.line}: USER {last.args}: never root")
    labels = dict(inherited_labels)
    for i in ins:
        if i.keyword == "LABEL":
            labels.update(_labels(i.args))
    if ports is None:
        inherited_labels.update(labels)
        return problems
    kws = {i.keyword for i in ins}
    entry = [i for i in ins if i.keyword == "ENTRYPOINT"]
    if not entry:
        problems.append(f"{where}: no ENTRYPOINT")
    if "HEALTHCHECK" not in kws and not re.search(r"^#\s*probe:", text, re.M):
        problems.append(f"{where}: no HEALTHCHECK and no '# probe:' comment naming the health endpoint")
    stop = [i for i in ins if i.keyword == "STOPSIGNAL"]
    if not stop:
        problems.append(f"{where}: no STOPSIGNAL (say which signal drains the process)")
    exposed = {int(p.split("/")[0]) for i in ins if i.keyword == "EXPOSE" for p in i.args.split()}
    if exposed != set(ports):
        problems.append(f"{where}: EXPOSE {sorted(exposed)}, the deploy interface says {sorted(ports)}")
    for label in OCI_LABELS:
        if not labels.get(label):
            problems.append(f"{where}: OCI label {label} missing")
    return problems


def check(images_dir: Path = IMAGES_DIR) -> list[str]:
    """Every problem of the image definitions (empty when they pass)."""
    problems: list[str] = []
    base = images_dir / BASE_CONTAINERFILE
    inherited: dict[str, str] = {}
    if not base.exists():
        return [f"{base} missing"]
    problems += check_containerfile(base, None, inherited)
    for img in IMAGES.values():
        path = images_dir / img.containerfile
        if not path.exists():
            problems.append(f"{path} missing")
            continue
        problems += check_containerfile(path, img.ports, inherited)
        first = parse_containerfile(path.read_text())[0]
        if first.keyword != "FROM" or first.args.split()[0] != RUNTIME_IMAGE:
            problems.append(f"{path.name}:{first.line}: must build FROM {RUNTIME_IMAGE} (base.Containerfile)")
    return problems


# -- compose stand-ins (added for tests/system/test_compose_up.py) --------------------------------
#
# compose/compose.yaml runs PostgreSQL, Redis and Prometheus from their upstream images
# (docker.io/library/postgres, docker.io/library/redis, docker.io/prom/prometheus), which cannot be
# pulled here: no registry is reachable. Stand-ins are built instead from Debian bookworm's own
# packages (postgresql-15, redis-server, prometheus; wget for Prometheus's health check): one more
# debootstrap root filesystem, cached like the base, imported as STANDIN_BASE, and one small
# Containerfile each (deploy/images/devstack-*.Containerfile, context deploy/images/devstack/) that
# behaves the way compose.yaml uses the upstream image: the postgres one honours POSTGRES_USER,
# POSTGRES_DB and POSTGRES_PASSWORD_FILE and has pg_isready; the redis one runs the command compose
# gives it, in /data, with redis-cli; the prometheus one reads /etc/prometheus/prometheus.yml and
# stores into /prometheus. They are tagged localhost/relaygate-devstack/<name>:bookworm (never with
# the upstream names) and swapped in by compose/compose.podman-test.yaml, for tests only.

STANDIN_PACKAGES = ("postgresql-15", "redis-server", "prometheus", "wget")
STANDIN_BASE = f"localhost/relaygate-devstack/services-base:{SUITE}"
STANDINS = {
    "postgres": "devstack-postgres.Containerfile",
    "redis": "devstack-redis.Containerfile",
    "prometheus": "devstack-prometheus.Containerfile",
}


def standin_tag(name: str) -> str:
    return f"localhost/relaygate-devstack/{name}:{SUITE}"


def build_standins() -> dict[str, str]:
    """Build (or find cached) the stand-ins for compose's third-party images; {name: tag}."""
    t0 = time.monotonic()
    tar = base_rootfs(STANDIN_PACKAGES)
    if image_label(STANDIN_BASE, "io.relaygate.rootfs") != tar.name:
        with Step(f"podman import {tar.name} as {STANDIN_BASE}"):
            podman(
                "import",
                "--change",
                f"LABEL io.relaygate.rootfs={tar.name}",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                str(tar),
                STANDIN_BASE,
            )
    for name, containerfile in STANDINS.items():
        podman_build(IMAGES_DIR / containerfile, standin_tag(name), IMAGES_DIR / "devstack", STANDIN_BASE)
    say(f"{', '.join(standin_tag(n) for n in STANDINS)} ready in {time.monotonic() - t0:.1f} s")
    return {n: standin_tag(n) for n in STANDINS}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m devstack.images", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the images with podman (offline; cached under ~/.cache/relaygate/images)")
    b.add_argument("--only", action="append", choices=list(IMAGES), help="build only this image (repeatable)")
    sub.add_parser("check", help="static checks of deploy/images/*.Containerfile (no podman needed)")
    sub.add_parser("standins", help="build the compose stack's local PostgreSQL, Redis and Prometheus stand-ins")
    a = p.parse_args(argv)
    if a.cmd == "check":
        problems = check()
        for pr in problems:
            print(pr)
        if problems:
            raise SystemExit(1)
        print(f"{len(IMAGES) + 1} Containerfiles pass the static checks")
    elif a.cmd == "standins":
        build_standins()
    else:
        build(a.only)


if __name__ == "__main__":
    main()
