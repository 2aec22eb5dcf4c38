from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.opa_decision_log_batch_item_bundles import OpaDecisionLogBatchItemBundles
    from ..models.opa_decision_log_batch_item_labels import OpaDecisionLogBatchItemLabels


T = TypeVar("T", bound="OpaDecisionLogBatchItem")


@_attrs_define
class OpaDecisionLogBatchItem:
    """
    Attributes:
        decision_id (str):
        labels (OpaDecisionLogBatchItemLabels | Unset):
        path (str | Unset):
        timestamp (str | Unset):
        bundles (OpaDecisionLogBatchItemBundles | Unset):
    """

    decision_id: str
    labels: OpaDecisionLogBatchItemLabels | Unset = UNSET
    path: str | Unset = UNSET
    timestamp: str | Unset = UNSET
    bundles: OpaDecisionLogBatchItemBundles | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        decision_id = self.decision_id

        labels: dict[str, Any] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels.to_dict()

        path = self.path

        timestamp = self.timestamp

        bundles: dict[str, Any] | Unset = UNSET
        if not isinstance(self.bundles, Unset):
            bundles = self.bundles.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "decision_id": decision_id,
            }
        )
        if labels is not UNSET:
            field_dict["labels"] = labels
        if path is not UNSET:
            field_dict["path"] = path
        if timestamp is not UNSET:
            field_dict["timestamp"] = timestamp
        if bundles is not UNSET:
            field_dict["bundles"] = bundles

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.opa_decision_log_batch_item_bundles import OpaDecisionLogBatchItemBundles  # noqa: PLC0415
        from ..models.opa_decision_log_batch_item_labels import OpaDecisionLogBatchItemLabels  # noqa: PLC0415

        d = dict(src_dict)
        decision_id = d.pop("decision_id")

        _labels = d.pop("labels", UNSET)
        labels: OpaDecisionLogBatchItemLabels | Unset
        if isinstance(_labels, Unset):
            labels = UNSET
        else:
            labels = OpaDecisionLogBatchItemLabels.from_dict(_labels)

        path = d.pop("path", UNSET)

        timestamp = d.pop("timestamp", UNSET)

        _bundles = d.pop("bundles", UNSET)
        bundles: OpaDecisionLogBatchItemBundles | Unset
        if isinstance(_bundles, Unset):
            bundles = UNSET
        else:
            bundles = OpaDecisionLogBatchItemBundles.from_dict(_bundles)

        opa_decision_log_batch_item = cls(
            decision_id=decision_id,
            labels=labels,
            path=path,
            timestamp=timestamp,
            bundles=bundles,
        )

        opa_decision_log_batch_item.additional_properties = d
        return opa_decision_log_batch_item

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
