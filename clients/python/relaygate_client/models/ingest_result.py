from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.ingest_result_deferred_item import IngestResultDeferredItem
    from ..models.ingest_result_rejected_item import IngestResultRejectedItem


T = TypeVar("T", bound="IngestResult")


@_attrs_define
class IngestResult:
    """
    Attributes:
        accepted (int):
        duplicates (int):
        rejected (list[IngestResultRejectedItem]):
        deferred (list[IngestResultDeferredItem]): signed by a key not known yet: send again
    """

    accepted: int
    duplicates: int
    rejected: list[IngestResultRejectedItem]
    deferred: list[IngestResultDeferredItem]

    def to_dict(self) -> dict[str, Any]:
        accepted = self.accepted

        duplicates = self.duplicates

        rejected = []
        for rejected_item_data in self.rejected:
            rejected_item = rejected_item_data.to_dict()
            rejected.append(rejected_item)

        deferred = []
        for deferred_item_data in self.deferred:
            deferred_item = deferred_item_data.to_dict()
            deferred.append(deferred_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": rejected,
                "deferred": deferred,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.ingest_result_deferred_item import IngestResultDeferredItem  # noqa: PLC0415
        from ..models.ingest_result_rejected_item import IngestResultRejectedItem  # noqa: PLC0415

        d = dict(src_dict)
        accepted = d.pop("accepted")

        duplicates = d.pop("duplicates")

        rejected = []
        _rejected = d.pop("rejected")
        for rejected_item_data in _rejected:
            rejected_item = IngestResultRejectedItem.from_dict(rejected_item_data)

            rejected.append(rejected_item)

        deferred = []
        _deferred = d.pop("deferred")
        for deferred_item_data in _deferred:
            deferred_item = IngestResultDeferredItem.from_dict(deferred_item_data)

            deferred.append(deferred_item)

        ingest_result = cls(
            accepted=accepted,
            duplicates=duplicates,
            rejected=rejected,
            deferred=deferred,
        )

        return ingest_result
