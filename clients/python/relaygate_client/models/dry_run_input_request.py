from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.dry_run_input_request_endpoint import DryRunInputRequestEndpoint
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dry_run_input_request_body import DryRunInputRequestBody


T = TypeVar("T", bound="DryRunInputRequest")


@_attrs_define
class DryRunInputRequest:
    """
    Attributes:
        endpoint (DryRunInputRequestEndpoint):
        body (DryRunInputRequestBody):
        key_id (str | Unset):
        model (str | Unset): Bedrock endpoints: the model id (the gateway takes it from the path)
    """

    endpoint: DryRunInputRequestEndpoint
    body: DryRunInputRequestBody
    key_id: str | Unset = UNSET
    model: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        endpoint = self.endpoint.value

        body = self.body.to_dict()

        key_id = self.key_id

        model = self.model

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "endpoint": endpoint,
                "body": body,
            }
        )
        if key_id is not UNSET:
            field_dict["key_id"] = key_id
        if model is not UNSET:
            field_dict["model"] = model

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dry_run_input_request_body import DryRunInputRequestBody  # noqa: PLC0415

        d = dict(src_dict)
        endpoint = DryRunInputRequestEndpoint(d.pop("endpoint"))

        body = DryRunInputRequestBody.from_dict(d.pop("body"))

        key_id = d.pop("key_id", UNSET)

        model = d.pop("model", UNSET)

        dry_run_input_request = cls(
            endpoint=endpoint,
            body=body,
            key_id=key_id,
            model=model,
        )

        return dry_run_input_request
