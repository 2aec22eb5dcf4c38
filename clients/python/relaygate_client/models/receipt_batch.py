from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.receipt_batch_receipts_item import ReceiptBatchReceiptsItem


T = TypeVar("T", bound="ReceiptBatch")


@_attrs_define
class ReceiptBatch:
    """
    Attributes:
        instance_id (str):
        receipts (list[ReceiptBatchReceiptsItem]):
    """

    instance_id: str
    receipts: list[ReceiptBatchReceiptsItem]

    def to_dict(self) -> dict[str, Any]:
        instance_id = self.instance_id

        receipts = []
        for receipts_item_data in self.receipts:
            receipts_item = receipts_item_data.to_dict()
            receipts.append(receipts_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "instance_id": instance_id,
                "receipts": receipts,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.receipt_batch_receipts_item import ReceiptBatchReceiptsItem  # noqa: PLC0415

        d = dict(src_dict)
        instance_id = d.pop("instance_id")

        receipts = []
        _receipts = d.pop("receipts")
        for receipts_item_data in _receipts:
            receipts_item = ReceiptBatchReceiptsItem.from_dict(receipts_item_data)

            receipts.append(receipts_item)

        receipt_batch = cls(
            instance_id=instance_id,
            receipts=receipts,
        )

        return receipt_batch
