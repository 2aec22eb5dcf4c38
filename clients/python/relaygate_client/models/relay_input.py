from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.relay_input_metadata import RelayInputMetadata
    from ..models.relay_input_payload import RelayInputPayload


T = TypeVar("T", bound="RelayInput")


@_attrs_define
class RelayInput:
    """
    Attributes:
        to (str): target model
        payload (RelayInputPayload): the provider-shaped request body
        metadata (RelayInputMetadata | Unset): custom tracking data, kept in logs (at most 16 KiB as JSON)
        fallback (list[str] | Unset): models to try next (default: the workspace's chain)
    """

    to: str
    payload: RelayInputPayload
    metadata: RelayInputMetadata | Unset = UNSET
    fallback: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        to = self.to

        payload = self.payload.to_dict()

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        fallback: list[str] | Unset = UNSET
        if not isinstance(self.fallback, Unset):
            fallback = self.fallback

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "to": to,
                "payload": payload,
            }
        )
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if fallback is not UNSET:
            field_dict["fallback"] = fallback

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.relay_input_metadata import RelayInputMetadata  # noqa: PLC0415
        from ..models.relay_input_payload import RelayInputPayload  # noqa: PLC0415

        d = dict(src_dict)
        to = d.pop("to")

        payload = RelayInputPayload.from_dict(d.pop("payload"))

        _metadata = d.pop("metadata", UNSET)
        metadata: RelayInputMetadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = RelayInputMetadata.from_dict(_metadata)

        fallback = cast(list[str], d.pop("fallback", UNSET))

        relay_input = cls(
            to=to,
            payload=payload,
            metadata=metadata,
            fallback=fallback,
        )

        return relay_input
