"""Rolling policy deployments: one policy version across tenants, wave by wave, gated on health.

A deployment pins ``policy@version`` for the tenants of one wave at a time
(tenant_pins; each tenant's bundle uses its pin instead of the policy's
current version). Each wave goes through stages that are stored before they
run, so a restarted control plane resumes where it stopped:

1. **applying**: write the wave's pins; the tenants' bundles change and their
   sidecars' long polls pick them up;
2. **adopting**: wait until every gateway of the wave's tenants reports the new
   bundle revision (``adoption_timeout``). Gateways already stale when the wave
   started are not waited for; one that goes stale during the wave is waited
   for ``stale_grace`` seconds, then the wave fails;
3. **observing**: for ``pause_seconds``, then the gates: error rate of the wave's
   gateways (5xx and policy errors per call) at most ``max_error_rate``;
   evidence emission (receipts received per call served) at least
   ``min_evidence_ratio``; no xDS NACK from them since the wave began.

A failing wave stops the rollout and rolls back every tenant deployed so far
to the pin it had before.

With several replicas on one database a deployment runs on exactly one of them: the
one holding its lease (relaygate/controlplane/leases.py, kind ``deployment``). The
replica that creates it claims it; every stage write is fenced on that lease, so a
replica that lost it (frozen past the TTL, cut off from the database) writes nothing
more and stops; each replica scans every ``lease_ttl / 3`` seconds (and at start) for
unfinished deployments nobody holds and resumes them at the stored stage (audit event
``deployment.resumed`` with the replica and the lease epoch). A rollback requested through
any replica is stored on the row (status ``rolling_back``, audit ``rollback_requested``);
the owner sees it at its next poll or stage write (a stage write is conditional on the
status it read) and rolls back; a deployment nobody holds (a succeeded one) is claimed by
the replica that took the request. Every step is an audit event; the deployment's
waves, timings and gate readings are kept in its record. /metrics counts
deployments by status (read from the database once at start, then moved on
each transition), waves applied, passed and failed, and deployments finished.
"""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa

from relaygate.controlplane import metrics, schema
from relaygate.controlplane.audit import record
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.fleet import STALE_AFTER_S
from relaygate.controlplane.leases import Lease, LeaseLost
from relaygate.controlplane.util import iso, new_id

log = logging.getLogger("relaygate.controlplane.deployments")
DEFAULT_GATES = {
    "max_error_rate": 0.05,
    "min_evidence_ratio": 0.5,
    "max_nacks": 0,
    "adoption_timeout": 60.0,
    "stale_grace": 30.0,
    "evidence_grace": 3.0,
}
D, PINS = schema.deployments, schema.tenant_pins
KIND = "deployment"


class _Moved(Exception):
    """The deployment's status changed under a stage write (a rollback was requested)."""


async def pins_for(conn, tenant: str) -> dict[str, int]:
    rows = (await conn.execute(sa.select(PINS.c.policy_id, PINS.c.version).where(PINS.c.tenant == tenant))).all()
    return dict(rows)


def _past_stale_grace(inst: dict, gates: dict) -> bool:
    """A wave member that went stale and stayed away longer than the gates' ``stale_grace``."""
    return inst["stale"] and inst["staleness_seconds"] > STALE_AFTER_S + gates["stale_grace"]


def deployment_json(row) -> dict:
    return {
        "id": row["id"],
        "policy_id": row["policy_id"],
        "version": row["version"],
        "tenants": row["tenants"],
        "wave_size": row["wave_size"],
        "pause_seconds": row["pause_seconds"],
        "gates": row["gates"],
        "status": row["status"],
        "current_wave": row["current_wave"],
        "stage": row["stage"],
        "waves": row["waves"],
        "reason": row["reason"],
        "created_by": row["created_by"],
        "created_at": iso(row["created_ms"]),
        "updated_at": iso(row["updated_ms"]),
        "finished_at": iso(row["finished_ms"]),
    }


class Deployments:
    def __init__(self, services) -> None:
        self.s = services
        self._tasks: dict[str, asyncio.Task] = {}
        self._leases: dict[str, Lease] = {}
        self._status: dict[str, str] = {}  # deployment id -> status, for /metrics
        self.poll = 0.25

    @property
    def engine(self):
        return self.s.engine

    # -- creating and resuming ------------------------------------------------------------
    async def load(self) -> None:
        """Read every deployment's status: at start, then every lease_ttl/3 (services.py), as another
        replica may own a deployment; :meth:`_moved` moves this replica's own transitions at once."""
        async with self.engine.connect() as c:
            rows = (await c.execute(sa.select(D.c.id, D.c.status))).all()
        self._status = dict(rows)
        for status in metrics.DEPLOYMENT_STATUSES:
            metrics.DEPLOYMENTS.labels(status).set(sum(s == status for s in self._status.values()))

    def _moved(self, did: str, status: str) -> None:
        """A deployment entered ``status`` (its row is committed)."""
        old = self._status.get(did)
        if old == status:
            return
        if old is not None:
            metrics.DEPLOYMENTS.labels(old).dec()
        metrics.DEPLOYMENTS.labels(status).inc()
        self._status[did] = status
        if status in ("succeeded", "rolled_back", "failed"):
            metrics.DEPLOYMENTS_FINISHED.labels(status).inc()

    async def create(self, workspace: str | None, body: dict, actor: str) -> dict:
        pid, version = body["policy_id"], body["version"]
        tenants = list(dict.fromkeys(body["tenants"]))
        gates = {**DEFAULT_GATES, **(body.get("gates") or {})}
        wave_size = body.get("wave_size", 1)
        async with self.engine.begin() as c:
            pol = (await c.execute(sa.select(schema.policies).where(schema.policies.c.id == pid))).mappings().first()
            if pol is None or pol["deleted_ms"] is not None or (workspace and pol["workspace_id"] != workspace):
                raise not_found("policy", pid)
            if pol["workspace_id"] is None:
                raise ApiError(400, "invalid_request", "platform policies roll out with the repository, not here")
            if (
                await c.execute(
                    sa.select(schema.policy_versions.c.version).where(
                        schema.policy_versions.c.policy_id == pid, schema.policy_versions.c.version == version
                    )
                )
            ).first() is None:
                raise not_found("policy version", f"{pid}@{version}")
            busy = (
                await c.execute(
                    sa.select(D.c.id).where(D.c.policy_id == pid, D.c.status.in_(["running", "rolling_back"]))
                )
            ).first()
            if busy:
                raise ApiError(409, "deployment.in_progress", f"deployment {busy[0]} of this policy is still running")
            previous = {}
            for t in tenants:
                previous[t] = (await pins_for(c, t)).get(pid)
            waves = [
                {"tenants": tenants[i : i + wave_size], "status": "pending"} for i in range(0, len(tenants), wave_size)
            ]
            did, now = new_id("dep_", 12), now_ms()
            await c.execute(
                D.insert().values(
                    id=did,
                    policy_id=pid,
                    version=version,
                    workspace_id=pol["workspace_id"],
                    tenants=tenants,
                    wave_size=wave_size,
                    pause_seconds=body.get("pause_seconds", 30.0),
                    gates=gates,
                    status="running",
                    current_wave=0,
                    stage="applying",
                    waves=waves,
                    previous=previous,
                    created_by=actor,
                    created_ms=now,
                    updated_ms=now,
                )
            )
            await record(
                c,
                "deployment.started",
                pol["workspace_id"],
                actor,
                {"deployment_id": did, "policy": f"{pid}@{version}", "tenants": tenants, "waves": len(waves)},
                policies=(f"{pid}@{version}",),
            )
            row = (await c.execute(sa.select(D).where(D.c.id == did))).mappings().first()
            lease = await self.s.leases.hold_new(c, KIND, did)
        self._moved(did, "running")
        self._start(did, lease, resuming=False)
        return dict(row)

    async def _take(self, did: str, resuming: bool = False) -> None:
        """Claim an unfinished deployment nobody holds (its replica died, or a finished one being
        rolled back) and run it here."""
        if did in self._tasks:
            return
        still_open = sa.exists().where(D.c.id == did, D.c.status.in_(["running", "rolling_back"]))
        lease = await self.s.leases.claim(KIND, did, still_open)
        if lease is None:
            return
        if resuming:
            log.info("resuming deployment %s (replica %s, lease epoch %d)", did, self.s.leases.owner, lease.epoch)
        self._start(did, lease, resuming)

    def _start(self, did: str, lease: Lease, resuming: bool) -> None:
        task = asyncio.create_task(self._own(did, lease, resuming))
        self._tasks[did], self._leases[did] = task, lease
        lease.keep(task.cancel)

        def done(_t) -> None:
            self._tasks.pop(did, None)
            self._leases.pop(did, None)

        task.add_done_callback(done)

    async def _own(self, did: str, lease: Lease, resumed: bool) -> None:
        try:
            if resumed:
                await self._save(
                    did, "resumed", {"replica": self.s.leases.owner, "epoch": lease.epoch}, lease=lease, expect=None
                )
            await self._run(did, lease)
        except LeaseLost as e:
            log.warning("deployment %s: %s; another replica runs it now", did, e)
        finally:
            await lease.release()

    async def resume(self) -> None:
        """Take over every unfinished deployment nobody holds (at start, then periodically)."""
        async with self.engine.connect() as c:
            ids = [
                r[0]
                for r in (await c.execute(sa.select(D.c.id).where(D.c.status.in_(["running", "rolling_back"])))).all()
            ]
        for did in await self.s.leases.claimable(KIND, [d for d in ids if d not in self._tasks]):
            await self._take(did, resuming=True)

    async def stop(self) -> None:
        """A clean stop: end the work here and release the leases so another replica resumes at once."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def rollback(self, did: str, workspace: str | None, actor: str):
        """Stop a running or finished deployment's waves and roll every touched tenant back.

        409 ``deployment.finished`` when it already failed or was rolled back."""
        row = await self.get(did, workspace)
        if row["status"] not in ("running", "succeeded"):
            raise ApiError(409, "deployment.finished", f"deployment is {row['status']}")
        # Stored, whichever replica runs it: the owner sees the status at its next poll or
        # stage write; one nobody holds (a finished one) is taken here.
        if not await self._save(
            did,
            "rollback_requested",
            {"by": actor},
            expect=("running", "succeeded"),
            status="rolling_back",
            reason=f"rollback requested by {actor}",
        ):
            row = await self.get(did, workspace)
            raise ApiError(409, "deployment.finished", f"deployment is {row['status']}")
        await self._take(did)
        return await self.get(did, workspace)

    async def get(self, did: str, workspace: str | None):
        async with self.engine.connect() as c:
            row = (await c.execute(sa.select(D).where(D.c.id == did))).mappings().first()
        if row is None or (workspace and row["workspace_id"] != workspace):
            raise not_found("deployment", did)
        return row

    # -- the state machine -------------------------------------------------------------------
    async def _save(
        self,
        did: str,
        step: str | None = None,
        detail: dict | None = None,
        *,
        lease: Lease | None = None,
        expect: str | tuple[str, ...] | None = "running",
        then=None,
        **values,
    ) -> bool:
        """Store a stage (and its audit event) in one transaction, fenced on ``lease`` when given
        and only while the status is still ``expect`` (False when it moved: a rollback request).
        ``then(c)`` runs in the same transaction first (the wave's pins)."""
        where = [D.c.id == did]
        if expect is not None:
            where.append(D.c.status.in_([expect] if isinstance(expect, str) else list(expect)))
        try:
            async with lease.fenced() if lease is not None else self.engine.begin() as c:
                if then is not None:
                    await then(c)
                if not (await c.execute(D.update().where(*where).values(updated_ms=now_ms(), **values))).rowcount:
                    raise _Moved
                if step:
                    ws = (await c.execute(sa.select(D.c.workspace_id).where(D.c.id == did))).scalar()
                    await record(c, f"deployment.{step}", ws, "control-plane", {"deployment_id": did, **(detail or {})})
        except _Moved:
            return False
        if "status" in values:
            self._moved(did, values["status"])
        return True

    async def _status_of(self, did: str) -> str | None:
        async with self.engine.connect() as c:
            return (await c.execute(sa.select(D.c.status).where(D.c.id == did))).scalar()

    async def _run(self, did: str, lease: Lease) -> None:
        try:
            while True:
                async with self.engine.connect() as c:
                    row = dict((await c.execute(sa.select(D).where(D.c.id == did))).mappings().first())
                if row["status"] == "running":
                    if not await self._step(row, lease):
                        return
                elif row["status"] == "rolling_back":
                    await self._rollback(row, lease)
                    return
                else:
                    return
        except (asyncio.CancelledError, LeaseLost):
            raise
        except Exception as e:
            log.exception("deployment %s failed", did)
            await self._save(
                did,
                "failed",
                {"error": str(e)},
                lease=lease,
                expect=None,
                status="failed",
                reason=str(e)[:2000],
                finished_ms=now_ms(),
            )

    @staticmethod
    def _pins(pid: str, tenants: list[str], version_of, did: str):
        async def write(c) -> None:
            for t in tenants:
                await c.execute(PINS.delete().where(PINS.c.tenant == t, PINS.c.policy_id == pid))
                v = version_of(t)
                if v is not None:
                    await c.execute(
                        PINS.insert().values(tenant=t, policy_id=pid, version=v, deployment_id=did, updated_ms=now_ms())
                    )

        return write

    async def _step(self, row: dict, lease: Lease) -> bool:
        """Advance one stage; False when the deployment is over."""
        did, i, waves = row["id"], row["current_wave"], row["waves"]
        if i >= len(waves):
            await self._save(
                did,
                "succeeded",
                {"policy": f"{row['policy_id']}@{row['version']}"},
                lease=lease,
                status="succeeded",
                stage="done",
                finished_ms=now_ms(),
            )
            log.info("deployment %s succeeded", did)
            return False
        wave = waves[i]
        if row["stage"] == "applying":
            # The pins and the stage in one fenced transaction: a wave is applied once.
            wave.update(status="adopting", started_at=iso(now_ms()), started_ms=now_ms())
            if await self._save(
                did,
                "wave_applied",
                {"wave": i, "tenants": wave["tenants"]},
                lease=lease,
                then=self._pins(row["policy_id"], wave["tenants"], lambda _t: row["version"], did),
                waves=waves,
                stage="adopting",
            ):
                await self.s.config_changed()
                metrics.DEPLOYMENT_WAVES.labels("applied").inc()
            return True
        if row["stage"] == "adopting":
            ok, why, members = await self._adopt(row, wave)
            if why == "moved":
                return True
            if not ok:
                return await self._fail(row, i, why, lease)
            wave.update(
                status="observing",
                adopted_at=iso(now_ms()),
                members=members,
                baseline=await self._readings(members),
                observe_from_ms=now_ms(),
            )
            await self._save(
                did, "wave_adopted", {"wave": i, "instances": members}, lease=lease, waves=waves, stage="observing"
            )
            return True
        if row["stage"] == "observing":
            remaining = row["pause_seconds"] - (now_ms() - wave.get("observe_from_ms", now_ms())) / 1000
            deadline = time.monotonic() + max(remaining, 0)
            while time.monotonic() < deadline:
                if await self._status_of(did) != "running":
                    return True  # a rollback was requested: the loop reads the row again
                stale = await self._stale_members(wave, row["gates"])
                if stale:
                    return await self._fail(row, i, stale, lease)
                await asyncio.sleep(min(self.poll, max(deadline - time.monotonic(), 0)))
            await asyncio.sleep(row["gates"]["evidence_grace"])
            ok, why, readings = await self._gates(row, wave)
            wave["gates"] = readings
            if not ok:
                return await self._fail(row, i, why, lease)
            wave.update(status="passed", passed_at=iso(now_ms()))
            if await self._save(
                did,
                "wave_passed",
                {"wave": i, "gates": readings},
                lease=lease,
                waves=waves,
                stage="applying",
                current_wave=i + 1,
            ):
                metrics.DEPLOYMENT_WAVES.labels("passed").inc()
            return True
        return False

    async def _fail(self, row: dict, i: int, why: str, lease: Lease) -> bool:
        waves = row["waves"]
        waves[i].update(status="failed", failed_at=iso(now_ms()), reason=why)
        log.warning("deployment %s: wave %d failed (%s); rolling back", row["id"], i, why)
        if await self._save(
            row["id"],
            "gate_failed",
            {"wave": i, "reason": why},
            lease=lease,
            waves=waves,
            status="rolling_back",
            reason=why,
        ):
            metrics.DEPLOYMENT_WAVES.labels("failed").inc()
        return True

    async def _rollback(self, row: dict, lease: Lease) -> None:
        touched = [t for w in row["waves"] if w["status"] != "pending" for t in w["tenants"]]
        prev = row["previous"]
        async with lease.fenced() as c:
            await self._pins(row["policy_id"], touched, lambda t: prev.get(t), row["id"])(c)
        await self.s.config_changed()
        members = [m for w in row["waves"] for m in w.get("members", [])]
        deadline = time.monotonic() + row["gates"]["adoption_timeout"]
        while time.monotonic() < deadline:  # best effort: report, do not hang
            adopted = [await self._adopted(m) for m in members]
            if all(adopted):
                break
            await asyncio.sleep(self.poll)
        for w in row["waves"]:
            if w["status"] in ("adopting", "observing", "passed", "failed"):
                w["rolled_back_at"] = iso(now_ms())
        await self._save(
            row["id"],
            "rolled_back",
            {"tenants": touched, "reason": row["reason"]},
            lease=lease,
            expect="rolling_back",
            waves=row["waves"],
            status="rolled_back",
            stage="done",
            finished_ms=now_ms(),
        )
        log.info("deployment %s rolled back (%s)", row["id"], row["reason"])

    # -- observations --------------------------------------------------------------------------
    async def _instances(self, tenants: list[str]) -> list[dict]:
        return [i for t in tenants for i in await self.s.fleet.instances(t)]

    async def _adopted(self, instance_id: str) -> bool:
        async with self.engine.connect() as c:
            row = (
                await c.execute(
                    sa.select(schema.instances.c.tenant, schema.instances.c.posture).where(
                        schema.instances.c.id == instance_id
                    )
                )
            ).first()
        if row is None:
            return False
        _, rev = await self.s.bundles.get(row[0])
        return (row[1] or {}).get("bundle_revision") == rev

    async def _adopt(self, row: dict, wave: dict) -> tuple[bool, str, list[str]]:
        gates, started = row["gates"], wave["started_ms"] / 1000
        members = [
            i["id"]
            for i in await self._instances(wave["tenants"])
            if i["last_seen_at"] and (time.time() - i["staleness_seconds"]) > started - STALE_AFTER_S
        ]
        deadline = time.monotonic() + gates["adoption_timeout"]
        while True:
            waiting, stale = [], []
            for inst in await self._instances(wave["tenants"]):
                if inst["id"] not in members:
                    continue
                if inst["stale"]:
                    stale.append(inst)
                elif not await self._adopted(inst["id"]):
                    waiting.append(inst["id"])
            for inst in stale:
                if _past_stale_grace(inst, gates):
                    return (
                        False,
                        f"gateway {inst['id']} is stale (no heartbeat for "
                        f"{inst['staleness_seconds']:.0f}s) and did not return within stale_grace",
                        members,
                    )
            if not waiting and not stale:
                return True, "", members
            if await self._status_of(row["id"]) != "running":
                return False, "moved", members  # a rollback was requested
            if time.monotonic() > deadline:
                return (
                    False,
                    f"gateways {sorted(waiting + [i['id'] for i in stale])} did not adopt the new bundle "
                    f"within {gates['adoption_timeout']:.0f}s",
                    members,
                )
            await asyncio.sleep(self.poll)

    async def _stale_members(self, wave: dict, gates: dict) -> str | None:
        for inst in await self._instances(wave["tenants"]):
            if inst["id"] in wave.get("members", []) and _past_stale_grace(inst, gates):
                return (
                    f"gateway {inst['id']} went stale during the wave (no heartbeat for "
                    f"{inst['staleness_seconds']:.0f}s)"
                )
        return None

    async def _readings(self, members: list[str]) -> dict:
        async with self.engine.connect() as c:
            rows = (
                await c.execute(
                    sa.select(schema.instances.c.id, schema.instances.c.posture).where(
                        schema.instances.c.id.in_(members)
                    )
                )
            ).all()
        return {
            iid: {"calls": (p or {}).get("calls_total", 0), "errors": (p or {}).get("errors_total", 0)}
            for iid, p in rows
        }

    async def _gates(self, row: dict, wave: dict) -> tuple[bool, str, dict]:
        gates, members = row["gates"], wave.get("members", [])
        base, now = wave.get("baseline", {}), await self._readings(members)
        calls = sum(max(now[m]["calls"] - base.get(m, {}).get("calls", 0), 0) for m in now)
        errors = sum(max(now[m]["errors"] - base.get(m, {}).get("errors", 0), 0) for m in now)
        async with self.engine.connect() as c:
            receipts = (
                (
                    await c.execute(
                        sa.select(sa.func.count())
                        .select_from(schema.audit_events)
                        .where(
                            schema.audit_events.c.chain_owner.in_(members or [""]),
                            schema.audit_events.c.ingested_ms >= wave["observe_from_ms"],
                        )
                    )
                ).scalar()
                if members
                else 0
            )
        nacks = [
            i["id"]
            for i in await self._instances(wave["tenants"])
            if (i["xds"].get("last_nack") or {}).get("at", 0) >= wave["started_ms"]
        ]
        # Errors are counted when a call settles, calls when it is decided: cap the ratio at 1.
        readings = {
            "calls": calls,
            "errors": errors,
            "error_rate": round(min(errors / calls, 1.0), 4) if calls else None,
            "receipts": receipts,
            "evidence_ratio": round(min(receipts / calls, 1.0), 4) if calls else None,
            "nacks": nacks,
        }
        if calls and readings["error_rate"] > gates["max_error_rate"]:
            return (
                False,
                f"error rate {readings['error_rate']:.1%} over {calls:.0f} calls exceeds {gates['max_error_rate']:.1%}",
                readings,
            )
        if calls and receipts / calls < gates["min_evidence_ratio"]:
            return (
                False,
                f"evidence emission {receipts}/{calls} receipts per call is below {gates['min_evidence_ratio']}",
                readings,
            )
        if len(nacks) > gates["max_nacks"]:
            return False, f"gateways {nacks} rejected their xDS config", readings
        return True, "", readings
