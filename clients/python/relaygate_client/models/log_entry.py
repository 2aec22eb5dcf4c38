from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.log_entry_fallback_type_0 import LogEntryFallbackType0
    from ..models.log_entry_metadata_type_0 import LogEntryMetadataType0
    from ..models.log_entry_tokens import LogEntryTokens


T = TypeVar("T", bound="LogEntry")


@_attrs_define
class LogEntry:
    """
    Attributes:
        request_id (str):
        timestamp (datetime.datetime): ISO 8601 / RFC 3339, UTC
        latency_ms (float | None | Unset):
        model (None | str | Unset):
        endpoint (None | str | Unset):
        status (int | None | Unset):
        decision (None | str | Unset):
        code (None | str | Unset):
        provider (None | str | Unset):
        upstream (None | str | Unset):
        user (None | str | Unset):
        tokens (LogEntryTokens | Unset):
        estimated_cost_usd (float | None | Unset):
        fallback (LogEntryFallbackType0 | None | Unset):
        metadata (LogEntryMetadataType0 | None | Unset):
    """

    request_id: str
    timestamp: datetime.datetime
    latency_ms: float | None | Unset = UNSET
    model: None | str | Unset = UNSET
    endpoint: None | str | Unset = UNSET
    status: int | None | Unset = UNSET
    decision: None | str | Unset = UNSET
    code: None | str | Unset = UNSET
    provider: None | str | Unset = UNSET
    upstream: None | str | Unset = UNSET
    user: None | str | Unset = UNSET
    tokens: LogEntryTokens | Unset = UNSET
    estimated_cost_usd: float | None | Unset = UNSET
    fallback: LogEntryFallbackType0 | None | Unset = UNSET
    metadata: LogEntryMetadataType0 | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.log_entry_fallback_type_0 import LogEntryFallbackType0  # noqa: PLC0415
        from ..models.log_entry_metadata_type_0 import LogEntryMetadataType0  # noqa: PLC0415

        request_id = self.request_id

        timestamp = self.timestamp.isoformat()

        latency_ms: float | None | Unset
        if isinstance(self.latency_ms, Unset):
            latency_ms = UNSET
        else:
            latency_ms = self.latency_ms

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

        status: int | None | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

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

        provider: None | str | Unset
        if isinstance(self.provider, Unset):
            provider = UNSET
        else:
            provider = self.provider

        upstream: None | str | Unset
        if isinstance(self.upstream, Unset):
            upstream = UNSET
        else:
            upstream = self.upstream

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        tokens: dict[str, Any] | Unset = UNSET
        if not isinstance(self.tokens, Unset):
            tokens = self.tokens.to_dict()

        estimated_cost_usd: float | None | Unset
        if isinstance(self.estimated_cost_usd, Unset):
            estimated_cost_usd = UNSET
        else:
            estimated_cost_usd = self.estimated_cost_usd

        fallback: dict[str, Any] | None | Unset
        if isinstance(self.fallback, Unset):
            fallback = UNSET
        elif isinstance(self.fallback, LogEntryFallbackType0):
            fallback = self.fallback.to_dict()
        else:
            fallback = self.fallback

        metadata: dict[str, Any] | None | Unset
        if isinstance(self.metadata, Unset):
            metadata = UNSET
        elif isinstance(self.metadata, LogEntryMetadataType0):
            metadata = self.metadata.to_dict()
        else:
            metadata = self.metadata

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "request_id": request_id,
                "timestamp": timestamp,
            }
        )
        if latency_ms is not UNSET:
            field_dict["latency_ms"] = latency_ms
        if model is not UNSET:
            field_dict["model"] = model
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if status is not UNSET:
            field_dict["status"] = status
        if decision is not UNSET:
            field_dict["decision"] = decision
        if code is not UNSET:
            field_dict["code"] = code
        if provider is not UNSET:
            field_dict["provider"] = provider
        if upstream is not UNSET:
            field_dict["upstream"] = upstream
        if user is not UNSET:
            field_dict["user"] = user
        if tokens is not UNSET:
            field_dict["tokens"] = tokens
        if estimated_cost_usd is not UNSET:
            field_dict["estimated_cost_usd"] = estimated_cost_usd
        if fallback is not UNSET:
            field_dict["fallback"] = fallback
        if metadata is not UNSET:
            field_dict["metadata"] = metadata

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.log_entry_fallback_type_0 import LogEntryFallbackType0  # noqa: PLC0415
        from ..models.log_entry_metadata_type_0 import LogEntryMetadataType0  # noqa: PLC0415
        from ..models.log_entry_tokens import LogEntryTokens  # noqa: PLC0415

        d = dict(src_dict)
        request_id = d.pop("request_id")

        timestamp = datetime.datetime.fromisoformat(d.pop("timestamp"))

        def _parse_latency_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        latency_ms = _parse_latency_ms(d.pop("latency_ms", UNSET))

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

        def _parse_status(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

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

        def _parse_provider(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        provider = _parse_provider(d.pop("provider", UNSET))

        def _parse_upstream(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        upstream = _parse_upstream(d.pop("upstream", UNSET))

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        _tokens = d.pop("tokens", UNSET)
        tokens: LogEntryTokens | Unset
        if isinstance(_tokens, Unset):
            tokens = UNSET
        else:
            tokens = LogEntryTokens.from_dict(_tokens)

        def _parse_estimated_cost_usd(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        estimated_cost_usd = _parse_estimated_cost_usd(d.pop("estimated_cost_usd", UNSET))

        def _parse_fallback(data: object) -> LogEntryFallbackType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                fallback_type_0 = LogEntryFallbackType0.from_dict(data)

                return fallback_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LogEntryFallbackType0 | None | Unset, data)

        fallback = _parse_fallback(d.pop("fallback", UNSET))

        def _parse_metadata(data: object) -> LogEntryMetadataType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                metadata_type_0 = LogEntryMetadataType0.from_dict(data)

                return metadata_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LogEntryMetadataType0 | None | Unset, data)

        metadata = _parse_metadata(d.pop("metadata", UNSET))

        log_entry = cls(
            request_id=request_id,
            timestamp=timestamp,
            latency_ms=latency_ms,
            model=model,
            endpoint=endpoint,
            status=status,
            decision=decision,
            code=code,
            provider=provider,
            upstream=upstream,
            user=user,
            tokens=tokens,
            estimated_cost_usd=estimated_cost_usd,
            fallback=fallback,
            metadata=metadata,
        )

        log_entry.additional_properties = d
        return log_entry

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
