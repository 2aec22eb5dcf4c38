"""Workspace policies run in worker processes, each policy alone with its own data, under a deadline.

Why processes: regorus holds the GIL for a whole evaluation and its Python
binding (0.13) exposes no instruction or time limit, so a rule looping over a
huge range stalls every thread of the process it runs in, the sidecar's event
loop included (every other workspace's calls then time out at Envoy). A
worker process can be killed at its deadline; the call that ran the
offending policy gets ``policy.error`` and nothing else waits on it.

Why one engine per policy: a policy's engine holds its own module and its
own ``policy_data`` and nothing else, so no Rego it contains -- ``data``,
``walk(data)``, ``data[x]``, imports -- can reach another policy's data or
rules (the control plane also refuses any ``data`` reference at compile
time, see :func:`relaygate.decision.workspace_policy.compile_policy`).

Fairness: a workspace holds at most ``workers - 1`` workers at once (at least
one), and a worker killed at its deadline keeps counting against the
workspace that ran it until its replacement is up, so one workspace can
never take the pool from the others. Workers run at a lower CPU priority
(nice 10) than the gateway itself, and an evaluation still running after
10 ms (no sane policy needs that long; they take microseconds) drops its
worker to SCHED_IDLE, so a runaway policy burns only CPU nobody else wants
until its deadline; a demoted worker is retired after its answer. Workers
are forked by a zygote that imported regorus once (:class:`_Zygote`): a
replacement costs a fork, not an interpreter start.

Protocol (a Unix socket per worker): 4-byte length-prefixed JSON messages;
the worker says ``{"ready": true}`` once it has started, then answers each
request in turn.

Settings (environment): ``RELAYGATE_POLICY_WORKERS`` (default 2),
``RELAYGATE_POLICY_TIMEOUT_MS`` (default 200, per call's evaluation of its
workspace's policies), ``RELAYGATE_POLICY_QUEUE_MS`` (default 1500, how long
a call may wait for a worker; with the deadline it stays under Envoy's 2 s message timeout), ``RELAYGATE_POLICY_SHARE_PCT`` (default 25: the
share of one worker's time a workspace's evaluations may take on average, with a burst of 1 s;
past it the workspace's next evaluations wait for it to refill, within the queue limit).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # workspace_policy imports this module (at run time, inside functions)
    from relaygate.decision.workspace_policy import ActivePolicy

log = logging.getLogger("relaygate.policy_sandbox")

DENY_QUERY = "data.relaygate.custom.{pid}.deny"
WORKER_NICE = 10
DEMOTE_AFTER = 0.01  # seconds of one evaluation after which its worker drops to SCHED_IDLE
MAX_REASON = 1000
MAX_REASONS = 50


class PolicyTimeout(Exception):
    """The workspace's policies did not finish within the evaluation limit (the worker was killed)."""


class PolicyBusy(Exception):
    """No worker was free for this workspace within the queue limit (transient)."""


class PolicyEvalError(Exception):
    """A workspace policy failed to evaluate (conflict, type error...); the message is safe to show."""


@dataclass(frozen=True)
class PolicyEntry:
    pid: str
    ref: str  # id@version, as receipts cite it
    status: int
    code: str
    source: str  # the module as the bundle carries it
    data: dict[str, Any]


class WorkspacePolicies:
    """The workspace policies of one bundle, by workspace; immutable."""

    def __init__(self, by_workspace: dict[str, list[PolicyEntry]]) -> None:
        self.by_workspace = {ws: tuple(sorted(ps, key=lambda p: p.pid)) for ws, ps in by_workspace.items()}
        h = hashlib.sha256()
        for ws in sorted(self.by_workspace):
            for p in self.by_workspace[ws]:
                h.update(orjson.dumps([ws, p.pid, p.ref, p.source, p.data], option=orjson.OPT_SORT_KEYS))
        self.id = h.hexdigest()[:24]

    @classmethod
    def from_active(cls, policies: Iterable[ActivePolicy]) -> "WorkspacePolicies":
        from relaygate.decision.workspace_policy import module_source

        out: dict[str, list[PolicyEntry]] = {}
        for p in policies:
            out.setdefault(p.workspace, []).append(
                PolicyEntry(p.policy_id, p.ref, p.doc.status, p.doc.code, module_source(p.policy_id, p.doc), p.doc.data)
            )
        return cls(out)

    def of(self, workspace: str) -> tuple[PolicyEntry, ...]:
        return self.by_workspace.get(workspace, ())

    def __bool__(self) -> bool:
        return bool(self.by_workspace)


EMPTY = WorkspacePolicies({})


def _settings() -> tuple[int, float, float, float]:
    def num(name: str, default: int) -> int:
        try:
            return max(1, int(os.environ.get(name, default)))
        except ValueError:
            return default

    return (
        num("RELAYGATE_POLICY_WORKERS", 2),
        num("RELAYGATE_POLICY_TIMEOUT_MS", 200) / 1000,
        num("RELAYGATE_POLICY_QUEUE_MS", 1500) / 1000,
        min(num("RELAYGATE_POLICY_SHARE_PCT", 25), 100) / 100,
    )


class _Worker:
    """One worker the zygote forked: its pid and our end of its socket."""

    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pid, self.reader, self.writer = pid, reader, writer
        self.loaded: set[str] = set()  # policy set ids this worker holds engines for
        self.demoted = False

    async def send(self, msg: dict[str, Any]) -> None:
        raw = orjson.dumps(msg)
        self.writer.write(struct.pack(">I", len(raw)) + raw)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        n = struct.unpack(">I", await self.reader.readexactly(4))[0]
        msg: dict[str, Any] = orjson.loads(await self.reader.readexactly(n))
        return msg

    def demote(self) -> None:
        """Move the worker to SCHED_IDLE: it runs only when no other task on the host wants the CPU."""
        try:
            os.sched_setscheduler(self.pid, os.SCHED_IDLE, os.sched_param(0))
            self.demoted = True
        except (OSError, AttributeError) as e:
            log.warning("could not lower policy worker %s to SCHED_IDLE: %s", self.pid, e)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.writer.close()


class _Zygote:
    """A process that has imported regorus once and forks policy workers on request.

    Replacing a worker killed at its deadline then costs a fork (a few ms of CPU)
    instead of an interpreter start and imports (~130 ms of CPU, paid again for
    every runaway evaluation). Control channel: a Unix socket as the zygote's
    stdin; each request carries the worker's socket (SCM_RIGHTS), the answer is
    the worker's pid. The zygote runs at the workers' lower priority from exec
    on; its children inherit it; it reaps them as they die.
    """

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.ctrl: socket.socket | None = None
        self.lock = asyncio.Lock()

    async def _start(self) -> socket.socket:
        """A fresh zygote; returns its control socket (also ``self.ctrl``)."""
        self.stop()
        ours, theirs = socket.socketpair()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *_NICE, sys.executable, "-m", "relaygate.decision.policy_sandbox", "--zygote", stdin=theirs.fileno()
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self.ctrl = ours
        if await asyncio.wait_for(self._read(ours, 1), 30) != b"R":
            raise RuntimeError("policy zygote did not start")
        return ours

    @staticmethod
    async def _read(ctrl: socket.socket, n: int) -> bytes:
        loop, buf = asyncio.get_running_loop(), b""
        while len(buf) < n:
            chunk = await loop.sock_recv(ctrl, n - len(buf))
            if not chunk:
                raise ConnectionError("policy zygote exited")
            buf += chunk
        return buf

    async def fork(self) -> _Worker:
        async with self.lock:
            ctrl = self.ctrl
            # (ctrl is None exactly when proc is: _start sets both, stop clears both)
            if self.proc is None or self.proc.returncode is not None or ctrl is None:
                ctrl = await self._start()
            ours, theirs = socket.socketpair()
            try:
                try:
                    socket.send_fds(ctrl, [b"F"], [theirs.fileno()])
                    pid = struct.unpack(">I", await asyncio.wait_for(self._read(ctrl, 4), 10))[0]
                except BaseException:
                    self.stop()  # a zygote that does not answer is started afresh next time
                    raise
            finally:
                theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 24)
        return _Worker(pid, reader, writer)

    def stop(self) -> None:
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except (ProcessLookupError, RuntimeError):  # RuntimeError: its event loop is gone
                pass
        self.proc = None


class PolicySandbox:
    """A pool of policy worker processes bound to the event loop that first uses it."""

    def __init__(
        self,
        workers: int | None = None,
        timeout: float | None = None,
        queue_timeout: float | None = None,
        share: float | None = None,
    ) -> None:
        w, t, q, sh = _settings()
        self.workers = workers or w
        self.timeout = timeout or t
        self.queue_timeout = queue_timeout or q
        # Evaluation time per workspace: a bucket of `burst` seconds refilled at `share` seconds per
        # second. Sane policies take microseconds per call and never notice; a workspace whose
        # evaluations keep running long waits for its time to refill before its next evaluation
        # starts (waiting costs no CPU; refusing at once would invite a flood of cheap retries).
        self.share = share or sh
        self.burst = max(1.0, 2 * self.timeout)
        self._time: dict[str, tuple[float, float]] = {}
        self.demote_after = min(DEMOTE_AFTER, self.timeout / 2)
        self.per_workspace = max(1, self.workers - 1)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Made by _bind, on the loop that first uses the sandbox; nothing reads them before.
        self._idle: asyncio.Queue[_Worker]
        self._cond: asyncio.Condition
        self._all: set[_Worker] = set()
        self._held: dict[str, int] = {}
        self._zygote: _Zygote | None = None

    # -- pool ----------------------------------------------------------------------------
    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind the pool to the running loop (a fresh pool if it was bound to another); the loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        for w in self._all:  # a pool from another (finished) loop cannot be awaited here
            w.kill()
        if self._zygote is not None:
            self._zygote.stop()
        self._zygote = _Zygote()
        self._loop, self._idle, self._cond = loop, asyncio.Queue(), asyncio.Condition()
        self._all, self._held = set(), {}
        for _ in range(self.workers):
            loop.create_task(self._spawn())
        return loop

    async def _spawn(self) -> None:
        try:
            zygote = self._zygote
            if zygote is None:
                raise RuntimeError("the policy sandbox is closed")
            w = await zygote.fork()
            ready = await asyncio.wait_for(w.recv(), 30)
            if not ready.get("ready"):
                raise RuntimeError(f"unexpected greeting {ready!r}")
        except Exception as e:  # noqa: BLE001 - a worker that cannot start is retried later
            log.error("policy worker failed to start: %s", e)
            await asyncio.sleep(1)
            loop = asyncio.get_running_loop()
            if self._loop is loop:
                loop.create_task(self._spawn())
            return
        self._all.add(w)
        self._idle.put_nowait(w)

    async def _replace(self, w: _Worker, workspace: str) -> None:
        """Kill a worker past its deadline; the workspace keeps the slot until a replacement is up."""
        w.kill()
        self._all.discard(w)
        try:
            await self._spawn()
        finally:
            await self._release(workspace)

    async def _acquire(self, workspace: str, deadline: float) -> _Worker:
        async with self._cond:
            while True:
                now = time.monotonic()
                if deadline <= now:
                    raise PolicyBusy("this workspace's policies are busy; retry shortly")
                left = self._time_left(workspace, now)
                if left >= 0 and self._held.get(workspace, 0) < self.per_workspace:
                    break
                # Wait for a slot (a release notifies) or for the workspace's evaluation time to refill.
                if left < 0 and -left / self.share > deadline - now:
                    raise PolicyBusy("this workspace's policies keep running long; retry shortly")
                wake = deadline - now if left >= 0 else -left / self.share
                try:
                    await asyncio.wait_for(self._cond.wait(), max(wake, 0.001))
                except asyncio.TimeoutError:
                    pass
            self._held[workspace] = self._held.get(workspace, 0) + 1
        try:
            return await asyncio.wait_for(self._idle.get(), max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            await self._release(workspace)
            raise PolicyBusy("the policy workers are busy; retry shortly") from None
        except BaseException:
            await self._release(workspace)
            raise

    def _time_left(self, workspace: str, now: float) -> float:
        level, then = self._time.get(workspace, (self.burst, now))
        return min(self.burst, level + (now - then) * self.share)

    def _charge(self, workspace: str, seconds: float) -> None:
        now = time.monotonic()
        self._time[workspace] = (self._time_left(workspace, now) - seconds, now)
        if len(self._time) > 4096:  # forget full buckets (the control plane's checks are keyed per policy)
            self._time = {k: v for k, v in self._time.items() if self._time_left(k, now) < self.burst}

    async def _release(self, workspace: str) -> None:
        async with self._cond:
            self._held[workspace] = max(0, self._held.get(workspace, 0) - 1)
            self._cond.notify_all()

    async def _run(
        self, workspace: str, load: tuple[str, dict[str, Any]] | None, request: dict[str, Any]
    ) -> dict[str, Any]:
        loop = self._bind()
        w = await self._acquire(workspace, time.monotonic() + self.queue_timeout)
        try:
            if load is not None and load[0] not in w.loaded:
                # Loading parses modules (bounded by the policy size caps); not part of the evaluation budget.
                await w.send({"op": "load", "set": load[0], "policies": load[1]})
                reply = await asyncio.wait_for(w.recv(), 10)
                if not reply.get("ok"):
                    raise PolicyEvalError(reply.get("error") or "policy set does not load")
                w.loaded = {load[0]} | set(list(w.loaded)[-1:])  # the worker keeps the newest two sets
            await w.send(request)
            started = time.monotonic()
            pending = asyncio.ensure_future(w.recv())
            done, _ = await asyncio.wait((pending,), timeout=self.demote_after)
            if not done:
                # Past what any sane policy needs: from now on it only gets CPU nobody else wants.
                w.demote()
            reply = await asyncio.wait_for(pending, max(self.timeout - self.demote_after, 0.001))
        except asyncio.TimeoutError:
            self._charge(workspace, self.timeout)
            loop.create_task(self._replace(w, workspace))
            raise PolicyTimeout(f"exceeded the evaluation limit ({self.timeout * 1000:.0f} ms)") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as e:
            loop.create_task(self._replace(w, workspace))
            raise PolicyEvalError(f"policy worker failed ({type(e).__name__})") from None
        except BaseException:
            loop.create_task(self._replace(w, workspace))
            raise
        self._charge(workspace, time.monotonic() - started)
        if w.demoted:  # an idle-class process cannot be raised back without privilege: retire it
            loop.create_task(self._replace(w, workspace))
        else:
            self._idle.put_nowait(w)
            await self._release(workspace)
        if not reply.get("ok"):
            raise PolicyEvalError(reply.get("error") or "policy evaluation failed")
        return reply

    async def close(self) -> None:
        for w in list(self._all):
            w.kill()
        self._all.clear()
        if self._zygote is not None:
            proc = self._zygote.proc
            self._zygote.stop()
            if proc is not None:
                try:
                    await proc.wait()
                except Exception:  # noqa: BLE001
                    pass
        self._zygote = None
        self._loop = None

    # -- requests ------------------------------------------------------------------------
    async def evaluate(self, wp: WorkspacePolicies, workspace: str, input_json: str) -> dict[str, Any]:
        """``{"denials": [{policy, status, code, reason}], "cited": [refs]}`` for one call of ``workspace``.

        Raises PolicyTimeout, PolicyBusy or PolicyEvalError; the caller denies with policy.error.
        """
        entries = wp.of(workspace)
        cited = [p.ref for p in entries]
        if not entries:
            return {"denials": [], "cited": []}
        policies = {p.pid: {"source": p.source, "data": p.data} for p in entries}
        set_id = f"{wp.id}:{workspace}"
        reply = await self._run(
            workspace, (set_id, policies), {"op": "eval", "set": set_id, "pids": sorted(policies), "input": input_json}
        )
        by_pid = {p.pid: p for p in entries}
        denials: list[dict[str, Any]] = []
        for pid, reasons in reply["results"].items():
            p = by_pid[pid]
            denials += [{"policy": p.ref, "status": p.status, "code": p.code, "reason": r} for r in reasons]
        return {"denials": denials, "cited": cited}

    async def check(self, pid: str, source: str, data: dict[str, Any]) -> bool:
        """Evaluate one policy's ``deny`` with an empty input, under the limit; True when it is a set."""
        reply = await self._run(f"check:{pid}", None, {"op": "check", "pid": pid, "source": source, "data": data})
        is_set: bool = reply["is_set"]
        return is_set


_default: PolicySandbox | None = None
# coreutils' nice lowers the worker's priority before its interpreter starts; where it is
# missing, the worker lowers its own (_serve).
_NICE = (shutil.which("nice"), "-n", str(WORKER_NICE)) if shutil.which("nice") else ()


def default_sandbox() -> PolicySandbox:
    """The process's shared pool (the sidecar's and the control plane's)."""
    global _default
    if _default is None:
        _default = PolicySandbox()
    return _default


# -- the worker process ----------------------------------------------------------------------


def _engine(pid: str, source: str, data: dict[str, Any]) -> Any:
    """A regorus.Engine holding one policy and its data (regorus has no types)."""
    import regorus

    e = regorus.Engine()
    e.add_policy(f"{pid}.rego", source)
    # Only this policy's data, at the path its generated policy_data rule binds.
    e.add_data_json(orjson.dumps({"relaygate": {"policy_data": {pid: data}}}).decode())
    return e


def _clean(err: BaseException) -> str:
    return str(err).split("Stack backtrace:")[0].strip()


def _reasons(value: Any) -> list[str]:
    if not isinstance(value, (set, frozenset, list)):
        return []
    out = sorted(r for r in value if isinstance(r, str))
    return [r[:MAX_REASON] for r in out[:MAX_REASONS]]


def _serve(sock: socket.socket) -> None:
    """A worker's loop: answer requests on ``sock`` until our side closes it."""
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")

    def send(msg: dict[str, Any]) -> None:
        raw = orjson.dumps(msg)
        wfile.write(struct.pack(">I", len(raw)) + raw)
        wfile.flush()

    sets: dict[str, dict[str, Any]] = {}
    send({"ready": True})
    while True:
        head = rfile.read(4)
        if len(head) < 4:
            return
        msg = orjson.loads(rfile.read(struct.unpack(">I", head)[0]))
        try:
            op = msg["op"]
            if op == "load":
                engines = {pid: _engine(pid, p["source"], p["data"]) for pid, p in msg["policies"].items()}
                sets[msg["set"]] = engines
                for old in list(sets)[:-2]:
                    del sets[old]
                send({"ok": True})
            elif op == "eval":
                engines = sets[msg["set"]]
                results: dict[str, list[str]] = {}
                for pid in msg["pids"]:
                    e = engines[pid]
                    e.set_input_json(msg["input"])
                    results[pid] = _reasons(e.eval_rule(DENY_QUERY.format(pid=pid)))
                send({"ok": True, "results": results})
            elif op == "check":
                e = _engine(msg["pid"], msg["source"], msg["data"])
                e.set_input_json("{}")
                value = e.eval_query(f"is_set({DENY_QUERY.format(pid=msg['pid'])})")
                result = value.get("result") or []
                send(
                    {
                        "ok": True,
                        "is_set": bool(result) and result[0]["expressions"][0]["value"] is True,
                        "defined": bool(result),
                    }
                )
            else:
                send({"ok": False, "error": f"unknown op {op!r}"})
        except BaseException as e:  # noqa: BLE001 - regorus panics are BaseException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            send({"ok": False, "error": _clean(e)})


def _die_with_parent(zygote: int) -> None:
    """SIGKILL this worker when the zygote exits (it exits when the sidecar's end of its control
    socket closes): a worker inside a runaway evaluation reads no end-of-file until it finishes."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != zygote:  # the zygote died before prctl took effect
        os._exit(0)


def _zygote() -> None:
    """Fork one worker per request on the control socket (stdin); exit when the sidecar closes it."""
    try:
        if os.nice(0) < WORKER_NICE:
            os.nice(WORKER_NICE - os.nice(0))
    except OSError:
        pass
    import regorus  # noqa: F401 - imported once here, inherited by every worker

    def reap(*_: object) -> None:  # workers' CPU time then adds up in the zygote's (ps, /proc/<pid>/stat)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass

    signal.signal(signal.SIGCHLD, reap)
    ctrl = socket.socket(fileno=0)
    try:
        ctrl.sendall(b"R")
    except OSError:  # the sidecar closed the sandbox while we started
        return
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, 16, 1)
        except (ConnectionError, OSError):
            return
        if not msg:
            return
        if not fds:
            continue
        conn = socket.socket(fileno=fds[0])
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ctrl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _die_with_parent(me)
                _serve(conn)
            except BaseException:  # noqa: BLE001 - a worker never returns into the zygote's loop
                code = 1
            finally:
                os._exit(code)
        conn.close()
        try:
            ctrl.sendall(struct.pack(">I", pid))
        except OSError:
            return


if __name__ == "__main__":
    _zygote()
