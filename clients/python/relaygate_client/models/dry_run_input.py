from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dry_run_input_input import DryRunInputInput
    from ..models.dry_run_input_request import DryRunInputRequest


T = TypeVar("T", bound="DryRunInput")


@_attrs_define
class DryRunInput:
    """
    Attributes:
        version (int | Unset):
        input_ (DryRunInputInput | Unset): a complete policy input document (docs/policy.md)
        request (DryRunInputRequest | Unset):
    """

    version: int | Unset = UNSET
    input_: DryRunInputInput | Unset = UNSET
    request: DryRunInputRequest | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        version = self.version

        input_: dict[str, Any] | Unset = UNSET
        if not isinstance(self.input_, Unset):
            input_ = self.input_.to_dict()

        request: dict[str, Any] | Unset = UNSET
        if not isinstance(self.request, Unset):
            request = self.request.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if version is not UNSET:
            field_dict["version"] = version
        if input_ is not UNSET:
            field_dict["input"] = input_
        if request is not UNSET:
            field_dict["request"] = request

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dry_run_input_input import DryRunInputInput  # noqa: PLC0415
        from ..models.dry_run_input_request import DryRunInputRequest  # noqa: PLC0415

        d = dict(src_dict)
        version = d.pop("version", UNSET)

        _input_ = d.pop("input", UNSET)
        input_: DryRunInputInput | Unset
        if isinstance(_input_, Unset):
            input_ = UNSET
        else:
            input_ = DryRunInputInput.from_dict(_input_)

        _request = d.pop("request", UNSET)
        request: DryRunInputRequest | Unset
        if isinstance(_request, Unset):
            request = UNSET
        else:
            request = DryRunInputRequest.from_dict(_request)

        dry_run_input = cls(
            version=version,
            input_=input_,
            request=request,
        )

        return dry_run_input
