"""Settlement: finish each call's receipt from Envoy's access log.

Envoy's gRPC access logger streams one entry per finished call, batched, off
the client's path. Each entry carries the receipt id (a logged response
header), the final status and response flags, timings, and the usage that
Envoy's json_to_metadata / sse_to_metadata filters lifted out of the response
body into the ``relaygate.usage`` metadata namespace. The settler settles the
budget holds to the real usage, then signs the receipt into the hash chain.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from datetime import datetime, timezone

import orjson
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from relaygate.evidence.receipts import GENESIS_HASH, RECEIPT_VERSION, sign_receipt
from relaygate.evidence.signing import Signer
from relaygate.extproc import metrics
from relaygate.contract.config import ModelPrice, cost_micros
from relaygate.decision.ledger import Hold, Ledger
from relaygate.contract.envoy import receipt_id_for
from relaygate.decision.wire import envoy_reply_body, parse_path
from relaygate.contract.envoy import ANSWERED_DETAILS, AUTHZ_DENIED_DETAILS, ENVOY_PRE_DECISION
from relaygate.contract.preauth import PreAuthLimits
from relaygate.extproc.preauth_sampler import SAMPLED, SAMPLED_DETAILS, ReceiptSampler
from relaygate.contract.decision import denial
from relaygate.decision.draft import CallDraft, call_draft
from relaygate.extproc.spool import Spool

log = logging.getLogger("relaygate.settlement")
from relaygate.contract.envoy import USAGE_NAMESPACE  # noqa: E402,F401

SLICE = 8  # receipts signed per event-loop turn
DENIAL_GRACE = 2.0  # seconds the access log gets to deliver a blocked call's entry


_second: list = [None, ""]  # (whole second, its "YYYY-MM-DDTHH:MM:SS"): strftime once a second


def _rfc3339(ts: float) -> str:
    """UTC, milliseconds, exactly as ``datetime.fromtimestamp(ts, utc).strftime(...%f)[:-3] + "Z"``
    (microseconds rounded half-even, then cut to milliseconds); two per receipt, so the second's
    text is formatted once a second (the strftime was ~3 us of each)."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    sec = int(whole)
    if _second[0] != sec:
        _second[0], _second[1] = sec, datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{us // 1000:03d}Z"


class Finalizer:
    """Signs receipts in chain order and keeps the ledger in step with the spool."""

    def __init__(self, spool: Spool, ledger: Ledger, signer: Signer, sidecar: str) -> None:
        self.spool, self.ledger, self.signer, self.sidecar = spool, ledger, signer, sidecar
        self.chain_seq, head = spool.chain_head()
        self.prev_hash = head or GENESIS_HASH

    def use_signer(self, signer: Signer) -> None:
        """Sign every receipt finalized from now on with ``signer`` (key rotation)."""
        self.signer = signer

    def finalize(self, items: list[tuple[str, dict, dict | None]], settle_ledger: bool = True) -> None:
        """items: (receipt id, draft, outcome or None when the call's end was never seen).

        The chain head and the ledger move only once the batch is committed, so a
        failed write leaves the rows pending (to be retried or expired), never a
        gap in the chain or a double settlement.
        """
        rows, settlements, seq, prev = [], [], self.chain_seq, self.prev_hash
        for rid, draft, outcome in items:
            receipt, charges, actual = self._receipt(rid, draft, outcome)
            seq += 1
            receipt["seq"], receipt["prev_hash"] = seq, prev
            envelope, prev = sign_receipt(receipt, self.signer)
            rows.append((rid, receipt["status"], seq, prev, orjson.dumps(envelope).decode(), charges))
            settlements.append((draft, receipt, actual))
        if not rows:
            return
        self.spool.finalize_many(rows)
        self.chain_seq, self.prev_hash = seq, prev
        if settle_ledger:
            batch = [([Hold(*h) for h in draft["holds"]], actual) for draft, _, actual in settlements if draft["holds"]]
            try:
                self.ledger.settle_many(batch)
            except Exception as e:
                # The receipts are signed and kept; the holds stay reserved (the budget can
                # only be under-used, never overspent) until their window ends.
                log.error(
                    "budget settlement of a batch of %d calls failed; holds not settled stay reserved: %s",
                    len(batch),
                    e,
                )
        for (_, _, outcome), (draft, receipt, actual) in zip(items, settlements):
            metrics.RECEIPTS.labels(receipt["status"]).inc()
            final = (receipt["response"] or {}).get("status") or receipt["decision"]["status"]
            metrics.OUTCOMES.labels(f"{final // 100}xx").inc()
            ws = metrics.workspace_label(draft["workspace"])
            up = draft["upstream"] or {}
            metrics.CALLS.labels(receipt["decision"]["code"], ws, up.get("name", ""), up.get("region", "")).inc()
            if actual:
                model = draft["model"] or ""
                metrics.TOKENS.labels(ws, model, "input").inc(receipt["usage"]["input_tokens"])
                metrics.TOKENS.labels(ws, model, "output").inc(receipt["usage"]["output_tokens"])
                metrics.COST.labels(ws, model).inc(receipt["cost"]["usd_micros"])
            if up and outcome is not None and receipt["response"] is not None:
                _genai(draft, receipt, outcome)

    def _receipt(self, rid: str, draft: dict, outcome: dict | None) -> tuple[dict, list, dict]:
        holds = draft["holds"]
        price = draft["price"]

        def charge(in_tok: int, out_tok: int) -> dict:
            cost = cost_micros(ModelPrice(price[0], price[1], 0), in_tok, out_tok) if price else 0
            return {"tokens": in_tok + out_tok, "usd": cost}

        in_tok = out_tok = 0
        served = None
        if not draft["upstream"]:
            source, actual = "none", {}  # blocked: nothing was forwarded
        elif outcome is None:
            source, actual = "reserved", charge(*draft["worst"])  # end never seen: the worst case
        elif outcome["usage"]:
            u = outcome["usage"]
            in_tok, out_tok, served = u["input_tokens"], u["output_tokens"], u.get("model")
            source, actual = "response", charge(in_tok, out_tok)
        elif outcome["upstream_answered"] and outcome["status"] < 400:
            source, actual = "reserved", charge(*draft["worst"])  # answered, usage unseen (aborted stream)
        elif (
            outcome.get("upstream_sent")
            and not outcome["upstream_answered"]
            and "downstream_connection_termination" in outcome["flags"]
        ):
            # The provider has the whole request and the caller hung up before its answer: it
            # generates (and bills) the answer anyway, so releasing the hold would make hanging
            # up a way to spend without being charged.
            source, actual = "reserved", charge(*draft["worst"])
        else:
            source, actual = "none", {}  # never reached or failed upstream: release
        charges = [[b, w, actual.get(u, 0)] for b, w, _, u, *_ in holds]
        receipt = {
            "version": RECEIPT_VERSION,
            "id": rid,
            "status": "complete" if outcome is not None else "incomplete",
            "sidecar": self.sidecar,
            "started_at": _rfc3339(draft["ts"]),
            "issued_at": _rfc3339(time.time()),
            "workspace": draft["workspace"],
            "key_id": draft["key_id"],
            "request": {
                "endpoint": draft["endpoint"],
                "path": draft["path"],
                "stream": draft["stream"],
                "digest": draft["request"]["digest"],
                "bytes": draft["request"]["bytes"],
                "user": draft.get("user"),
            },
            "decision": draft["decision"],
            "model": {"requested": draft["model"], "served": served}
            | ({"alias": draft["alias"]} if draft.get("alias") else {}),
            "upstream": draft["upstream"],
            "response": None
            if outcome is None
            else {
                "status": outcome["status"],
                "flags": outcome["flags"],
                "bytes": outcome["bytes"],
                "digest": outcome.get("digest") or (draft.get("response_digest") if not draft["upstream"] else None),
            },
            "usage": {"input_tokens": in_tok, "output_tokens": out_tok, "source": source},
            "cost": {"usd_micros": actual.get("usd", 0)},
            "latency_us": None if outcome is None else outcome["latency_us"],
        }
        if draft.get("credential"):  # a session token or a JWT: the key_id is its maker key's (or null)
            receipt["credential"] = draft["credential"]
        return receipt, charges, actual

    def sweep(self, now: float, grace: float, settle_ledger: bool = True) -> int:
        """Finalize what the access log did not deliver.

        Envoy's gRPC access log is lossy under back-pressure (its
        ``logs_dropped`` counter), so no receipt may depend on it alone. A
        blocked call's outcome is fully known at decision time: after
        DENIAL_GRACE it is completed from the decision itself. An allowed call
        may still be streaming: only after ``grace`` does it become an
        incomplete receipt charged its reservation.
        """
        items = []
        for rid, draft in self.spool.pending(now - DENIAL_GRACE):
            if not draft["decision"]["allow"]:
                items.append((rid, draft, outcome_of_denial(draft)))
            elif draft["ts"] < now - grace:
                items.append((rid, draft, None))
        if items:
            expired = sum(outcome is None for _, _, outcome in items)
            if expired:
                log.warning("%d calls ended unseen; their receipts are finalized as incomplete", expired)
            self.finalize(items, settle_ledger)
        return len(items)


def _genai(draft: dict, receipt: dict, outcome: dict) -> None:
    """The OpenTelemetry GenAI metrics of one forwarded call (relaygate/extproc/metrics.py)."""
    labels = (
        metrics.OPERATION.get(draft["endpoint"] or "", draft["endpoint"] or ""),
        draft["upstream"]["provider"],
        draft["model"] or "",
        receipt["model"]["served"] or "",
    )
    status = outcome["status"]
    if outcome["latency_us"] is not None:
        metrics.GENAI_DURATION.labels(*labels, str(status) if status >= 400 else "").observe(
            outcome["latency_us"] / 1e6
        )
    usage = receipt["usage"]
    if usage["source"] == "response":
        metrics.GENAI_TOKENS.labels(*labels, "input").observe(usage["input_tokens"])
        metrics.GENAI_TOKENS.labels(*labels, "output").observe(usage["output_tokens"])
    first = outcome.get("first_byte_us")
    if draft["stream"] and first is not None and status < 400:
        metrics.GENAI_TTFT.labels(*labels).observe(first / 1e6)
        if usage["output_tokens"] > 1 and outcome["latency_us"] is not None:
            per = (outcome["latency_us"] - first) / 1e6 / (usage["output_tokens"] - 1)
            metrics.GENAI_TPOT.labels(*labels).observe(max(0.0, per))


def outcome_of_denial(draft: dict) -> dict:
    """The outcome of a blocked call, known from its decision alone."""
    return {
        "status": draft["decision"]["status"],
        "flags": "",
        "bytes": None,
        "latency_us": None,
        "upstream_answered": False,
        "usage": None,
        "digest": draft.get("response_digest"),
    }


def _flags(flags) -> str:
    return ",".join(f.name for f, v in flags.ListFields() if v is True)


def _number(struct, key: str) -> int | None:
    v = struct.fields.get(key)
    if v is None or v.WhichOneof("kind") != "number_value":
        return None
    return int(v.number_value)


def _us(d) -> int:
    return d.seconds * 1_000_000 + d.nanos // 1000


def outcome_of(entry) -> tuple[str | None, dict]:
    cp, resp = entry.common_properties, entry.response
    rid = receipt_id_for(entry.request.request_id) if entry.request.request_id else None
    usage = digest = None
    md = cp.metadata.filter_metadata.get(USAGE_NAMESPACE)
    if md is not None:
        d = md.fields.get("response_digest")
        if d is not None and d.string_value.startswith("sha256:"):
            digest = d.string_value
        i = _number(md, "input_tokens")
        gemini = _number(md, "gemini_prompt_tokens")
        if gemini is not None:  # Gemini: tool-use prompt tokens are input too, thinking tokens output
            i = gemini + (_number(md, "gemini_tool_prompt_tokens") or 0)
        elif i is None:
            i = _number(md, "prompt_tokens")
        else:  # Anthropic: tokens read from or written to the prompt cache are not in input_tokens
            i += (_number(md, "cache_creation_input_tokens") or 0) + (_number(md, "cache_read_input_tokens") or 0)
        o = _number(md, "output_tokens")
        if gemini is not None:
            o = (_number(md, "gemini_candidates_tokens") or 0) + (_number(md, "gemini_thoughts_tokens") or 0)
        elif o is None:
            o = _number(md, "completion_tokens")
        # An Anthropic stream names its input at message_start and its output only in the final
        # message_delta: input without output is a stream cut short (the caller hung up after
        # reading the text), not a usage of zero output tokens, so the reservation stands.
        # (OpenAI embeddings name prompt_tokens only: that is their whole usage.)
        anthropic_cut_short = o is None and _number(md, "input_tokens") is not None
        if (i is not None or o is not None) and not anthropic_cut_short:
            model = md.fields.get("model")
            usage = {
                "input_tokens": i or 0,
                "output_tokens": o or 0,
                "model": model.string_value if model is not None else None,
            }
    dur = cp.duration if cp.HasField("duration") else cp.time_to_last_downstream_tx_byte
    return rid, {
        "status": resp.response_code.value,
        "flags": _flags(cp.response_flags),
        "bytes": resp.response_body_bytes,
        "latency_us": _us(dur),
        "upstream_answered": cp.HasField("time_to_first_upstream_rx_byte"),
        # when the provider's first byte arrived, from the call's start (TTFT of a stream)
        "first_byte_us": _us(cp.time_to_first_upstream_rx_byte)
        if cp.HasField("time_to_first_upstream_rx_byte")
        else None,
        "upstream_sent": cp.HasField("time_to_last_upstream_tx_byte"),
        "usage": usage,
        "digest": digest,
    }


# Codes for replies Envoy makes itself before any decision, by HTTP status: the same codes
# its local_reply_config puts in their bodies (relaygate/decision/wire.py, relaygate/envoy/config.py).
ENVOY_LOCAL_CODES = {status: code for status, code, _ in ENVOY_PRE_DECISION.values()}


def _envoy_gave_up(details: str) -> bool:
    """Envoy answered without waiting for the decision: its ext_authz check failed or timed out
    (a check's own denial is ``ext_authz_denied``, an allowed call has no ext_authz details)."""
    return details.startswith("ext_authz") and details != AUTHZ_DENIED_DETAILS


def _superseded(draft: dict, status: int, details: str) -> dict:
    """The draft of an allowed call that Envoy refused before the decision reached it (the policy
    service was stalled past the check's timeout and decided afterwards): the receipt records what
    Envoy did, nothing was forwarded, and the holds are released."""
    code = ENVOY_LOCAL_CODES.get(status, "gateway.rejected")
    why = f"the gateway stopped waiting for the policy decision ({details}); the call was not forwarded"
    return dict(
        draft, decision=denial(status, code, [why], bundle=draft["decision"].get("bundle")), upstream=None, price=None
    )


def envoy_local_draft(entry) -> CallDraft:
    """The draft of a call that Envoy answered without a policy decision."""
    cp, req, resp = entry.common_properties, entry.request, entry.response
    path = req.path[:512]
    route = parse_path(path)
    status = resp.response_code.value
    code = ENVOY_LOCAL_CODES.get(status, "gateway.rejected")
    rid = receipt_id_for(req.request_id) if req.request_id else None
    body = envoy_reply_body(status, rid) if rid else None
    return call_draft(
        ts=cp.start_time.seconds + cp.start_time.nanos / 1e9,
        path=path,
        workspace=route.workspace if route else None,
        endpoint=route.endpoint if route else None,
        body_bytes=req.request_body_bytes,
        decision=denial(status, code, [resp.response_code_details or code], bundle=None),
        response_body=body,
    )


_DEFAULT_LIMITS = PreAuthLimits()


class AccessLogSink(als_pb2_grpc.AccessLogServiceServicer):
    """``limits`` returns the gateway's PreAuthLimits in force (receipt sampling of Envoy's replies)."""

    def __init__(self, finalizer: Finalizer, limits=lambda: _DEFAULT_LIMITS) -> None:
        self.finalizer = finalizer
        self.limits = limits
        self._sampler: ReceiptSampler | None = None
        self.streams = 0  # Envoy's open access-log streams: a stop waits for them (server.py)
        self.idle = asyncio.Event()
        self.idle.set()

    def _sample(self, entry, draft: dict) -> bool:
        """True: this Envoy-made reply gets no receipt of its own (see relaygate/contract/preauth.py)."""
        limits = self.limits()
        sampler = self._sampler
        if sampler is None or sampler.limits is not limits:
            if sampler is not None:
                sampler.flush()
            spool = self.finalizer.spool
            sampler = self._sampler = ReceiptSampler(limits, spool.add_pending, spool.update_pending, SAMPLED)
        sa = entry.common_properties.downstream_remote_address.socket_address
        d = draft["decision"]
        return sampler.admit(sa.address or "unknown", d["code"], d["status"], "envoy_reply") is not None

    def _pending_item(self, entry, known: dict[str, tuple[str, dict]]) -> tuple[str, dict, dict] | None:
        """(receipt id, draft, outcome) for a call still pending, else None.

        ``known``: the drafts of the whole access-log message, read in one query; a call Envoy
        answered before any decision has none there and is looked up (and drafted) on its own."""
        rid, outcome = outcome_of(entry)
        if rid is None:
            metrics.UNRECEIPTED.inc()
            return None
        spool = self.finalizer.spool
        found = known.get(rid) or spool.draft(rid)
        if found is None:  # Envoy answered before any policy decision (e.g. body over the limit)
            details = entry.response.response_code_details
            # A denial the policy service decided always has its draft spooled before the reply,
            # unless the denial was counted in a summary receipt: the ext_proc reply says so in
            # its details; an ext_authz check's denial (details: ext_authz_denied) with no draft
            # can only be such a one.
            if details.startswith(SAMPLED_DETAILS) or details in (AUTHZ_DENIED_DETAILS, ANSWERED_DETAILS):
                return None
            draft = envoy_local_draft(entry)
            if self._sample(entry, draft):
                return None
            try:
                spool.add_pending(rid, draft)
            except sqlite3.IntegrityError:
                log.warning("receipt %s appeared while its access-log entry was read", rid)
            found = spool.draft(rid)
        state, draft = found
        if state != "pending":
            return None  # already finalized (e.g. expired as incomplete)
        if draft["decision"]["allow"] and _envoy_gave_up(details := entry.response.response_code_details):
            draft = _superseded(draft, outcome["status"], details)
        metrics.CALL_DURATION.labels(draft["endpoint"] or "", f"{outcome['status'] // 100}xx").observe(
            outcome["latency_us"] / 1e6
        )
        return rid, draft, outcome

    async def StreamAccessLogs(self, request_iterator, context):
        self.streams += 1
        self.idle.clear()
        try:
            await self._stream(request_iterator)
        finally:
            self.streams -= 1
            if not self.streams:
                self.idle.set()
        return als_pb2.StreamAccessLogsResponse()

    async def _stream(self, request_iterator) -> None:
        async for msg in request_iterator:
            batch = []
            entries = msg.http_logs.log_entry
            try:
                known = self.finalizer.spool.drafts(
                    [receipt_id_for(e.request.request_id) for e in entries if e.request.request_id]
                )
            except Exception:  # one entry at a time below, as before
                log.exception("reading the drafts of an access-log batch failed")
                known = {}
            for entry in entries:
                try:
                    item = self._pending_item(entry, known)
                except Exception:  # one odd entry must never cost the rest of the stream
                    log.exception("access-log entry could not be matched to a receipt")
                    continue
                if item is not None:
                    batch.append(item)
            # Settle in small slices and yield in between, so a large access-log batch
            # never holds up the decisions waiting on the same event loop.
            for i in range(0, len(batch), SLICE):
                try:
                    self.finalizer.finalize(batch[i : i + SLICE])
                except Exception:
                    log.exception("finalizing %d receipts failed; they stay pending", len(batch[i : i + SLICE]))
                await asyncio.sleep(0)
