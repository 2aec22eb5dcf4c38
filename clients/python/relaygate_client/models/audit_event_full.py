from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.audit_event_detail_type_0 import AuditEventDetailType0
    from ..models.audit_event_full_inclusion_proof_type_0 import AuditEventFullInclusionProofType0
    from ..models.audit_event_full_receipt_type_0 import AuditEventFullReceiptType0
    from ..models.audit_event_tokens_type_0 import AuditEventTokensType0


T = TypeVar("T", bound="AuditEventFull")


@_attrs_define
class AuditEventFull:
    """
    Attributes:
        id (str):
        kind (str):
        occurred_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        workspace (None | str | Unset):
        actor (None | str | Unset):
        key_id (None | str | Unset):
        user (None | str | Unset):
        model (None | str | Unset):
        endpoint (None | str | Unset):
        decision (None | str | Unset):
        code (None | str | Unset):
        status (int | None | Unset):
        latency_ms (float | None | Unset):
        tokens (AuditEventTokensType0 | None | Unset):
        cost_usd (float | None | Unset):
        upstream (None | str | Unset):
        provider (None | str | Unset):
        sidecar (None | str | Unset):
        policies (list[str] | Unset):
        detail (AuditEventDetailType0 | None | Unset):
        receipt (AuditEventFullReceiptType0 | None | Unset):
        inclusion_proof (AuditEventFullInclusionProofType0 | None | Unset):
    """

    id: str
    kind: str
    occurred_at: datetime.datetime
    workspace: None | str | Unset = UNSET
    actor: None | str | Unset = UNSET
    key_id: None | str | Unset = UNSET
    user: None | str | Unset = UNSET
    model: None | str | Unset = UNSET
    endpoint: None | str | Unset = UNSET
    decision: None | str | Unset = UNSET
    code: None | str | Unset = UNSET
    status: int | None | Unset = UNSET
    latency_ms: float | None | Unset = UNSET
    tokens: AuditEventTokensType0 | None | Unset = UNSET
    cost_usd: float | None | Unset = UNSET
    upstream: None | str | Unset = UNSET
    provider: None | str | Unset = UNSET
    sidecar: None | str | Unset = UNSET
    policies: list[str] | Unset = UNSET
    detail: AuditEventDetailType0 | None | Unset = UNSET
    receipt: AuditEventFullReceiptType0 | None | Unset = UNSET
    inclusion_proof: AuditEventFullInclusionProofType0 | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.audit_event_detail_type_0 import AuditEventDetailType0  # noqa: PLC0415
        from ..models.audit_event_full_inclusion_proof_type_0 import AuditEventFullInclusionProofType0  # noqa: PLC0415
        from ..models.audit_event_full_receipt_type_0 import AuditEventFullReceiptType0  # noqa: PLC0415
        from ..models.audit_event_tokens_type_0 import AuditEventTokensType0  # noqa: PLC0415

        id = self.id

        kind = self.kind

        occurred_at = self.occurred_at.isoformat()

        workspace: None | str | Unset
        if isinstance(self.workspace, Unset):
            workspace = UNSET
        else:
            workspace = self.workspace

        actor: None | str | Unset
        if isinstance(self.actor, Unset):
            actor = UNSET
        else:
            actor = self.actor

        key_id: None | str | Unset
        if isinstance(self.key_id, Unset):
            key_id = UNSET
        else:
            key_id = self.key_id

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        endpoint: None | str | Unset
        if isinstance(self.endpoint, Unset):
            endpoint = UNSET
        else:
            endpoint = self.endpoint

        decision: None | str | Unset
        if isinstance(self.decision, Unset):
            decision = UNSET
        else:
            decision = self.decision

        code: None | str | Unset
        if isinstance(self.code, Unset):
            code = UNSET
        else:
            code = self.code

        status: int | None | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        latency_ms: float | None | Unset
        if isinstance(self.latency_ms, Unset):
            latency_ms = UNSET
        else:
            latency_ms = self.latency_ms

        tokens: dict[str, Any] | None | Unset
        if isinstance(self.tokens, Unset):
            tokens = UNSET
        elif isinstance(self.tokens, AuditEventTokensType0):
            tokens = self.tokens.to_dict()
        else:
            tokens = self.tokens

        cost_usd: float | None | Unset
        if isinstance(self.cost_usd, Unset):
            cost_usd = UNSET
        else:
            cost_usd = self.cost_usd

        upstream: None | str | Unset
        if isinstance(self.upstream, Unset):
            upstream = UNSET
        else:
            upstream = self.upstream

        provider: None | str | Unset
        if isinstance(self.provider, Unset):
            provider = UNSET
        else:
            provider = self.provider

        sidecar: None | str | Unset
        if isinstance(self.sidecar, Unset):
            sidecar = UNSET
        else:
            sidecar = self.sidecar

        policies: list[str] | Unset = UNSET
        if not isinstance(self.policies, Unset):
            policies = self.policies

        detail: dict[str, Any] | None | Unset
        if isinstance(self.detail, Unset):
            detail = UNSET
        elif isinstance(self.detail, AuditEventDetailType0):
            detail = self.detail.to_dict()
        else:
            detail = self.detail

        receipt: dict[str, Any] | None | Unset
        if isinstance(self.receipt, Unset):
            receipt = UNSET
        elif isinstance(self.receipt, AuditEventFullReceiptType0):
            receipt = self.receipt.to_dict()
        else:
            receipt = self.receipt

        inclusion_proof: dict[str, Any] | None | Unset
        if isinstance(self.inclusion_proof, Unset):
            inclusion_proof = UNSET
        elif isinstance(self.inclusion_proof, AuditEventFullInclusionProofType0):
            inclusion_proof = self.inclusion_proof.to_dict()
        else:
            inclusion_proof = self.inclusion_proof

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "kind": kind,
                "occurred_at": occurred_at,
            }
        )
        if workspace is not UNSET:
            field_dict["workspace"] = workspace
        if actor is not UNSET:
            field_dict["actor"] = actor
        if key_id is not UNSET:
            field_dict["key_id"] = key_id
        if user is not UNSET:
            field_dict["user"] = user
        if model is not UNSET:
            field_dict["model"] = model
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if decision is not UNSET:
            field_dict["decision"] = decision
        if code is not UNSET:
            field_dict["code"] = code
        if status is not UNSET:
            field_dict["status"] = status
        if latency_ms is not UNSET:
            field_dict["latency_ms"] = latency_ms
        if tokens is not UNSET:
            field_dict["tokens"] = tokens
        if cost_usd is not UNSET:
            field_dict["cost_usd"] = cost_usd
        if upstream is not UNSET:
            field_dict["upstream"] = upstream
        if provider is not UNSET:
            field_dict["provider"] = provider
        if sidecar is not UNSET:
            field_dict["sidecar"] = sidecar
        if policies is not UNSET:
            field_dict["policies"] = policies
        if detail is not UNSET:
            field_dict["detail"] = detail
        if receipt is not UNSET:
            field_dict["receipt"] = receipt
        if inclusion_proof is not UNSET:
            field_dict["inclusion_proof"] = inclusion_proof

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.audit_event_detail_type_0 import AuditEventDetailType0  # noqa: PLC0415
        from ..models.audit_event_full_inclusion_proof_type_0 import AuditEventFullInclusionProofType0  # noqa: PLC0415
        from ..models.audit_event_full_receipt_type_0 import AuditEventFullReceiptType0  # noqa: PLC0415
        from ..models.audit_event_tokens_type_0 import AuditEventTokensType0  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        kind = d.pop("kind")

        occurred_at = datetime.datetime.fromisoformat(d.pop("occurred_at"))

        def _parse_workspace(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workspace = _parse_workspace(d.pop("workspace", UNSET))

        def _parse_actor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        actor = _parse_actor(d.pop("actor", UNSET))

        def _parse_key_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        key_id = _parse_key_id(d.pop("key_id", UNSET))

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        def _parse_endpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        endpoint = _parse_endpoint(d.pop("endpoint", UNSET))

        def _parse_decision(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        decision = _parse_decision(d.pop("decision", UNSET))

        def _parse_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        code = _parse_code(d.pop("code", UNSET))

        def _parse_status(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        def _parse_latency_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        latency_ms = _parse_latency_ms(d.pop("latency_ms", UNSET))

        def _parse_tokens(data: object) -> AuditEventTokensType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                tokens_type_0 = AuditEventTokensType0.from_dict(data)

                return tokens_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuditEventTokensType0 | None | Unset, data)

        tokens = _parse_tokens(d.pop("tokens", UNSET))

        def _parse_cost_usd(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        cost_usd = _parse_cost_usd(d.pop("cost_usd", UNSET))

        def _parse_upstream(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        upstream = _parse_upstream(d.pop("upstream", UNSET))

        def _parse_provider(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        provider = _parse_provider(d.pop("provider", UNSET))

        def _parse_sidecar(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sidecar = _parse_sidecar(d.pop("sidecar", UNSET))

        policies = cast(list[str], d.pop("policies", UNSET))

        def _parse_detail(data: object) -> AuditEventDetailType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                detail_type_0 = AuditEventDetailType0.from_dict(data)

                return detail_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuditEventDetailType0 | None | Unset, data)

        detail = _parse_detail(d.pop("detail", UNSET))

        def _parse_receipt(data: object) -> AuditEventFullReceiptType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                receipt_type_0 = AuditEventFullReceiptType0.from_dict(data)

                return receipt_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuditEventFullReceiptType0 | None | Unset, data)

        receipt = _parse_receipt(d.pop("receipt", UNSET))

        def _parse_inclusion_proof(data: object) -> AuditEventFullInclusionProofType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                inclusion_proof_type_0 = AuditEventFullInclusionProofType0.from_dict(data)

                return inclusion_proof_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AuditEventFullInclusionProofType0 | None | Unset, data)

        inclusion_proof = _parse_inclusion_proof(d.pop("inclusion_proof", UNSET))

        audit_event_full = cls(
            id=id,
            kind=kind,
            occurred_at=occurred_at,
            workspace=workspace,
            actor=actor,
            key_id=key_id,
            user=user,
            model=model,
            endpoint=endpoint,
            decision=decision,
            code=code,
            status=status,
            latency_ms=latency_ms,
            tokens=tokens,
            cost_usd=cost_usd,
            upstream=upstream,
            provider=provider,
            sidecar=sidecar,
            policies=policies,
            detail=detail,
            receipt=receipt,
            inclusion_proof=inclusion_proof,
        )

        audit_event_full.additional_properties = d
        return audit_event_full

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
