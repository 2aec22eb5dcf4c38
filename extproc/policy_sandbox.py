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
time, see :func:`extproc.workspace_policy.compile_policy`).

Fairness: a workspace holds at most ``workers - 1`` workers at once (at least
one), and a worker killed at its deadline keeps counting against the
workspace that ran it until its replacement is up, so one workspace can
never take the pool from the others. Workers run at a lower CPU priority
(nice 10) than the gateway itself from exec on, their interpreter start-up
included: every evaluation that runs past its deadline costs a respawn.

Protocol (stdin/stdout of ``python -m extproc.policy_sandbox``): 4-byte
length-prefixed JSON messages; the worker says ``{"ready": true}`` once it
has started, then answers each request in turn.

Settings (environment): ``RELAYGATE_POLICY_WORKERS`` (default 2),
``RELAYGATE_POLICY_TIMEOUT_MS`` (default 200, per call's evaluation of its
workspace's policies), ``RELAYGATE_POLICY_QUEUE_MS`` (default 2000, how long
a call may wait for a worker).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import struct
import sys
import time
from dataclasses import dataclass

import orjson

log = logging.getLogger("relaygate.policy_sandbox")

DENY_QUERY = "data.relaygate.custom.{pid}.deny"
WORKER_NICE = 10
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
    ref: str           # id@version, as receipts cite it
    status: int
    code: str
    source: str        # the module as the bundle carries it
    data: dict


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
    def from_active(cls, policies) -> "WorkspacePolicies":
        from extproc.workspace_policy import module_source
        out: dict[str, list[PolicyEntry]] = {}
        for p in policies:
            out.setdefault(p.workspace, []).append(PolicyEntry(
                p.policy_id, p.ref, p.doc.status, p.doc.code, module_source(p.policy_id, p.doc), p.doc.data))
        return cls(out)

    def of(self, workspace: str) -> tuple[PolicyEntry, ...]:
        return self.by_workspace.get(workspace, ())

    def __bool__(self) -> bool:
        return bool(self.by_workspace)


EMPTY = WorkspacePolicies({})


def _settings() -> tuple[int, float, float]:
    def num(name, default):
        try:
            return max(1, int(os.environ.get(name, default)))
        except ValueError:
            return default
    return (num("RELAYGATE_POLICY_WORKERS", 2), num("RELAYGATE_POLICY_TIMEOUT_MS", 200) / 1000,
            num("RELAYGATE_POLICY_QUEUE_MS", 2000) / 1000)


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.loaded: set[str] = set()      # policy set ids this worker holds engines for

    async def send(self, msg: dict) -> None:
        raw = orjson.dumps(msg)
        self.proc.stdin.write(struct.pack(">I", len(raw)) + raw)
        await self.proc.stdin.drain()

    async def recv(self) -> dict:
        n = struct.unpack(">I", await self.proc.stdout.readexactly(4))[0]
        return orjson.loads(await self.proc.stdout.readexactly(n))

    def kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass


class PolicySandbox:
    """A pool of policy worker processes bound to the event loop that first uses it."""

    def __init__(self, workers: int | None = None, timeout: float | None = None,
                 queue_timeout: float | None = None) -> None:
        w, t, q = _settings()
        self.workers = workers or w
        self.timeout = timeout or t
        self.queue_timeout = queue_timeout or q
        self.per_workspace = max(1, self.workers - 1)
        self._loop = None
        self._idle: asyncio.Queue | None = None
        self._all: set[_Worker] = set()
        self._held: dict[str, int] = {}
        self._cond: asyncio.Condition | None = None

    # -- pool ----------------------------------------------------------------------------
    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        for w in self._all:          # a pool from another (finished) loop cannot be awaited here
            w.kill()
        self._loop, self._idle, self._cond = loop, asyncio.Queue(), asyncio.Condition()
        self._all, self._held = set(), {}
        for _ in range(self.workers):
            loop.create_task(self._spawn())

    async def _spawn(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *_NICE, sys.executable, "-m", "extproc.policy_sandbox", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, limit=1 << 24)
            w = _Worker(proc)
            ready = await asyncio.wait_for(w.recv(), 30)
            if not ready.get("ready"):
                raise RuntimeError(f"unexpected greeting {ready!r}")
        except Exception as e:  # noqa: BLE001 - a worker that cannot start is retried later
            log.error("policy worker failed to start: %s", e)
            await asyncio.sleep(1)
            if self._loop is asyncio.get_running_loop():
                self._loop.create_task(self._spawn())
            return
        self._all.add(w)
        self._idle.put_nowait(w)

    async def _replace(self, w: _Worker, workspace: str) -> None:
        """Kill a worker past its deadline; the workspace keeps the slot until a replacement is up."""
        w.kill()
        self._all.discard(w)
        try:
            await w.proc.wait()
            await self._spawn()
        finally:
            await self._release(workspace)

    async def _acquire(self, workspace: str, deadline: float) -> _Worker:
        async with self._cond:
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._cond.wait_for(
                    lambda: self._held.get(workspace, 0) < self.per_workspace), max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise PolicyBusy("this workspace's policies are busy; retry shortly") from None
            self._held[workspace] = self._held.get(workspace, 0) + 1
        try:
            return await asyncio.wait_for(self._idle.get(), max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            await self._release(workspace)
            raise PolicyBusy("the policy workers are busy; retry shortly") from None
        except BaseException:
            await self._release(workspace)
            raise

    async def _release(self, workspace: str) -> None:
        async with self._cond:
            self._held[workspace] = max(0, self._held.get(workspace, 0) - 1)
            self._cond.notify_all()

    async def _run(self, workspace: str, load: tuple[str, dict] | None, request: dict) -> dict:
        self._bind()
        w = await self._acquire(workspace, time.monotonic() + self.queue_timeout)
        try:
            if load is not None and load[0] not in w.loaded:
                # Loading parses modules (bounded by the policy size caps); not part of the evaluation budget.
                await w.send({"op": "load", "set": load[0], "policies": load[1]})
                reply = await asyncio.wait_for(w.recv(), 10)
                if not reply.get("ok"):
                    raise PolicyEvalError(reply.get("error") or "policy set does not load")
                w.loaded = {load[0]} | set(list(w.loaded)[-1:])   # the worker keeps the newest two sets
            await w.send(request)
            reply = await asyncio.wait_for(w.recv(), self.timeout)
        except asyncio.TimeoutError:
            self._loop.create_task(self._replace(w, workspace))
            raise PolicyTimeout(f"exceeded the evaluation limit ({self.timeout * 1000:.0f} ms)") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as e:
            self._loop.create_task(self._replace(w, workspace))
            raise PolicyEvalError(f"policy worker failed ({type(e).__name__})") from None
        except BaseException:
            self._loop.create_task(self._replace(w, workspace))
            raise
        self._idle.put_nowait(w)
        await self._release(workspace)
        if not reply.get("ok"):
            raise PolicyEvalError(reply.get("error") or "policy evaluation failed")
        return reply

    async def close(self) -> None:
        for w in list(self._all):
            w.kill()
            try:
                await w.proc.wait()
            except Exception:  # noqa: BLE001
                pass
        self._all.clear()
        self._loop = None

    # -- requests ------------------------------------------------------------------------
    async def evaluate(self, wp: WorkspacePolicies, workspace: str, input_json: str) -> dict:
        """``{"denials": [{policy, status, code, reason}], "cited": [refs]}`` for one call of ``workspace``.

        Raises PolicyTimeout, PolicyBusy or PolicyEvalError; the caller denies with policy.error.
        """
        entries = wp.of(workspace)
        cited = [p.ref for p in entries]
        if not entries:
            return {"denials": [], "cited": []}
        policies = {p.pid: {"source": p.source, "data": p.data} for p in entries}
        set_id = f"{wp.id}:{workspace}"
        reply = await self._run(workspace, (set_id, policies),
                                {"op": "eval", "set": set_id, "pids": sorted(policies), "input": input_json})
        by_pid = {p.pid: p for p in entries}
        denials = []
        for pid, reasons in reply["results"].items():
            p = by_pid[pid]
            denials += [{"policy": p.ref, "status": p.status, "code": p.code, "reason": r} for r in reasons]
        return {"denials": denials, "cited": cited}

    async def check(self, pid: str, source: str, data: dict) -> bool:
        """Evaluate one policy's ``deny`` with an empty input, under the limit; True when it is a set."""
        reply = await self._run(f"check:{pid}", None,
                                {"op": "check", "pid": pid, "source": source, "data": data})
        return reply["is_set"]


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

def _engine(pid: str, source: str, data: dict):
    import regorus
    e = regorus.Engine()
    e.add_policy(f"{pid}.rego", source)
    # Only this policy's data, at the path its generated policy_data rule binds.
    e.add_data_json(orjson.dumps({"relaygate": {"policy_data": {pid: data}}}).decode())
    return e


def _clean(err: BaseException) -> str:
    return str(err).split("Stack backtrace:")[0].strip()


def _reasons(value) -> list[str]:
    if not isinstance(value, (set, frozenset, list)):
        return []
    out = sorted(r for r in value if isinstance(r, str))
    return [r[:MAX_REASON] for r in out[:MAX_REASONS]]


def _serve() -> None:
    try:
        if os.nice(0) < WORKER_NICE:
            os.nice(WORKER_NICE - os.nice(0))
    except OSError:
        pass
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def send(msg: dict) -> None:
        raw = orjson.dumps(msg)
        stdout.write(struct.pack(">I", len(raw)) + raw)
        stdout.flush()

    sets: dict[str, dict] = {}
    send({"ready": True})
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        msg = orjson.loads(stdin.read(struct.unpack(">I", head)[0]))
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
                results = {}
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
                send({"ok": True, "is_set": bool(result) and result[0]["expressions"][0]["value"] is True,
                      "defined": bool(result)})
            else:
                send({"ok": False, "error": f"unknown op {op!r}"})
        except BaseException as e:  # noqa: BLE001 - regorus panics are BaseException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            send({"ok": False, "error": _clean(e)})


if __name__ == "__main__":
    _serve()
