"""Linux network namespaces for tests that need real network topology on one machine.

Why: a sidecar deployment is defined by its network: in a pod, the app's outbound traffic
to a provider is captured by the pod's firewall (a mesh's init container writes the
iptables rules) and handed to the gateway next to it, while the control plane and the
providers live on other hosts. Loopback cannot show any of that: every process shares one
firewall and one set of addresses. Namespaces give each role its own interfaces, routes
and iptables, so a test can set up exactly what a pod has and try to get around it.

What a :class:`Topology` makes (root only):

- one namespace per role, named ``rg-<pid>-<n>-<role>`` (the pid of the test process:
  :func:`sweep_stale` recognises leftovers of a process that no longer exists);
- a bridge namespace (``...-br``) holding a Linux bridge and the far end of one veth pair
  per role, so the roles reach each other over a real L2 segment without the host's own
  namespace being involved at all: the test never adds an address, route or rule to the
  machine it runs on;
- a private ``10.213.X.0/24`` (X random) that exists only inside those namespaces, role i
  at ``.(i+2)``; loopback up in each; IPv6 off on the veths, so the only way between
  namespaces is the IPv4 the test's firewall rules cover (a link-local IPv6 address would
  be a path around them);
- :meth:`Topology.run` / :meth:`Topology.spawn` run a command inside a role's namespace
  (``ip netns exec``), optionally as another uid (:func:`as_uid`);
- :meth:`Topology.unplug` / :meth:`Topology.plug` take a role's link down at the bridge
  (a cable pulled: its own interface keeps its address, nothing reaches it).

Cleanup (:meth:`Topology.close`, also on ``__exit__``, so a failing test cleans up too):
every process spawned is stopped (its whole process group, the last spawned first; SIGKILL
after 5 s), then anything else still inside the namespaces is killed, then every namespace
is deleted. A namespace lives while any process is in it, so the order matters.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX = "rg-"
_COUNTER = itertools.count()
_STALE = re.compile(rf"^{PREFIX}(\d+)-")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(ns: str) -> None:
    """SIGKILL every process still inside namespace ``ns`` (it keeps the namespace alive)."""
    out = _ip("netns", "pids", ns, check=False).stdout
    for pid in (int(p) for p in out.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _delete(ns: str) -> None:
    _kill_inside(ns)
    _ip("netns", "del", ns, check=False)


def sweep_stale() -> list[str]:
    """Delete ``rg-<pid>-*`` namespaces whose creating process is gone (a test run that was
    SIGKILLed never reached its cleanup); returns the names deleted."""
    gone = []
    for ns in _namespaces():
        m = _STALE.match(ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete(ns)
            gone.append(ns)
    return gone


def as_uid(uid: int, argv: list[str], keep: tuple[str, ...] = ()) -> list[str]:
    """``argv`` run as ``uid``/``gid`` ``uid`` with no supplementary groups, no way to gain
    privileges and no capabilities but the ones named in ``keep`` (e.g. ``dac_read_search``,
    see :func:`interpreter_caps`): what a container's non-root user has. Without
    ``net_admin``/``net_raw`` it can neither change the namespace's firewall nor get around it
    with raw packets."""
    caps = "".join(f",+{c}" for c in keep)
    argv_caps = [f"--ambient-caps={caps[1:]}"] if keep else []
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        f"--inh-caps=-all{caps}",
        *argv_caps,
        f"--bounding-set=-all{caps}",
        "--no-new-privs",
        "--",
        *argv,
    ]


def interpreter_caps() -> tuple[str, ...]:
    """The capabilities another uid needs to run this Python: none where the interpreter is
    world-reachable; ``dac_read_search`` (read and traverse files, nothing network) where it
    lives under a private directory, e.g. a pyenv build in /root (0700)."""
    for path in (Path(os.path.realpath(sys.executable)), Path(sys.prefix), Path(sys.base_prefix)):
        # Every directory on the way traversable by others, and the leaf too (the interpreter
        # executable, or the venv / installation directory).
        if not all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents)):
            return ("dac_read_search",)
    return ()


# A tiny HTTP client run inside a namespace (the test process itself stays in the host's
# namespace, where the topology's addresses do not exist).
_HTTP_CLIENT = r"""
import json, sys, urllib.error, urllib.request
method, url, headers, body, timeout = json.loads(sys.argv[1])
req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=timeout) as r:
        status, hdrs, text = r.status, dict(r.headers), r.read().decode(errors="replace")
except urllib.error.HTTPError as e:
    status, hdrs, text = e.code, dict(e.headers), e.read().decode(errors="replace")
except OSError as e:
    status, hdrs, text = 0, {}, repr(e)
print(json.dumps({"status": status, "headers": {k.lower(): v for k, v in hdrs.items()}, "body": text}))
"""


class Topology:
    """Namespaces for ``roles`` joined by a bridge on a private /24; see the module docstring."""

    def __init__(self, roles: list[str]) -> None:
        if len(set(roles)) != len(roles) or not all(re.fullmatch(r"[a-z][a-z0-9]{0,9}", r) for r in roles):
            raise ValueError(f"roles: distinct, lower-case letters and digits, at most 10: {roles}")
        self.roles = list(roles)
        self.tag = f"{PREFIX}{os.getpid()}-{next(_COUNTER)}"
        self.subnet = f"10.213.{random.randrange(256)}"
        self.bridge_ns = f"{self.tag}-br"
        self.made: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.addresses = {role: f"{self.subnet}.{i + 2}" for i, role in enumerate(self.roles)}

    # -- names and addresses ---------------------------------------------------------------
    def ns(self, role: str) -> str:
        return f"{self.tag}-{role}"

    def ip(self, role: str) -> str:
        return self.addresses[role]

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Topology":
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def create(self) -> None:
        sweep_stale()
        self._add(self.bridge_ns)
        br = self.bridge_ns
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for role in self.roles:
            ns = self.ns(role)
            self._add(ns)
            # Made inside the bridge namespace, its peer moved straight into the role's:
            # no interface ever appears in the host's namespace.
            _ip("-n", br, "link", "add", f"p-{role}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", br, "link", "set", f"p-{role}", "master", "br0", "up")
            self.run(role, ["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"])
            _ip("-n", ns, "addr", "add", f"{self.ip(role)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Stop what was spawned, then kill whatever is left inside, then delete every namespace
        made. Safe to call twice and after a partial create.

        Processes stop one by one, the last spawned first (SIGTERM to the process group, SIGKILL
        after 5 s): clients before the servers they hold connections to, as a server that
        stops gracefully waits for its open requests (a sidecar's bundle long-poll holds one on
        the control plane for up to 20 s)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(5)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            proc.wait()
        self.procs.clear()
        for ns in reversed(self.made):
            _delete(ns)
        self.made.clear()

    # -- running things inside ---------------------------------------------------------------
    def _argv(
        self, role: str, argv: list[str], uid: int | None, keep: tuple[str, ...] = (), own_shm: bool = False
    ) -> list[str]:
        inner = as_uid(uid, argv, keep) if uid is not None else list(argv)
        if own_shm:
            # `ip netns exec` runs its command in a mount namespace of its own (it remounts /sys
            # there), so this tmpfs is seen by this process tree only, as a container's /dev/shm.
            mount = "mount -t tmpfs -o mode=1777,size=16m,nosuid,nodev rg-shm /dev/shm"
            inner = ["sh", "-c", f'{mount} && exec "$@"', "sh", *inner]
        return ["ip", "netns", "exec", self.ns(role), *inner]

    def run(
        self, role: str, argv: list[str], uid: int | None = None, keep: tuple[str, ...] = (), **kw
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` to completion inside ``role``'s namespace, as ``uid`` if given (check=True,
        text output captured, unless told otherwise)."""
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self._argv(role, argv, uid, keep), **kw)

    def spawn(
        self,
        role: str,
        argv: list[str],
        log: Path,
        uid: int | None = None,
        keep: tuple[str, ...] = (),
        own_shm: bool = False,
        **kw,
    ) -> subprocess.Popen:
        """Start ``argv`` in ``role``'s namespace, its own process group, output to ``log`` (0600).
        ``ip netns exec``, ``sh -c 'exec'`` and ``setpriv`` exec, so the Popen's pid is the program's.

        ``own_shm``: a private /dev/shm, as every container has. Envoy keeps its hot-restart
        region in /dev/shm/envoy_shared_memory_<base-id>; shared with the host, an Envoy running
        as a non-root uid cannot replace one another (root) Envoy left there, and aborts."""
        fh = os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            proc = subprocess.Popen(
                self._argv(role, argv, uid, keep, own_shm),
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kw,
            )
        finally:
            fh.close()
        self.procs.append(proc)
        return proc

    def http(
        self,
        role: str,
        method: str,
        url: str,
        headers: dict | None = None,
        body: str | None = None,
        timeout: float = 5,
    ) -> dict:
        """One HTTP exchange made from inside ``role``'s namespace: {"status", "headers", "body"};
        status 0 when no answer came (the exception's repr is the body)."""
        args = json.dumps([method, url, headers or {}, body, timeout])
        out = self.run(role, [sys.executable, "-I", "-c", _HTTP_CLIENT, args], timeout=timeout + 30)
        return json.loads(out.stdout)

    # -- links ---------------------------------------------------------------------------------
    def unplug(self, role: str) -> None:
        """Take ``role``'s link down at the bridge: its interface keeps its address and routes
        (carrier lost), nothing crosses the wire in either direction."""
        _ip("-n", self.bridge_ns, "link", "set", f"p-{role}", "down")

    def plug(self, role: str) -> None:
        _ip("-n", self.bridge_ns, "link", "set", f"p-{role}", "up")
