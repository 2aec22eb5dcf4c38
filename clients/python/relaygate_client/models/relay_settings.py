from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.relay_settings_fallbacks import RelaySettingsFallbacks


T = TypeVar("T", bound="RelaySettings")


@_attrs_define
class RelaySettings:
    """
    Attributes:
        fallbacks (RelaySettingsFallbacks | Unset): model -> models to try next, in order
    """

    fallbacks: RelaySettingsFallbacks | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        fallbacks: dict[str, Any] | Unset = UNSET
        if not isinstance(self.fallbacks, Unset):
            fallbacks = self.fallbacks.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if fallbacks is not UNSET:
            field_dict["fallbacks"] = fallbacks

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.relay_settings_fallbacks import RelaySettingsFallbacks  # noqa: PLC0415

        d = dict(src_dict)
        _fallbacks = d.pop("fallbacks", UNSET)
        fallbacks: RelaySettingsFallbacks | Unset
        if isinstance(_fallbacks, Unset):
            fallbacks = UNSET
        else:
            fallbacks = RelaySettingsFallbacks.from_dict(_fallbacks)

        relay_settings = cls(
            fallbacks=fallbacks,
        )

        return relay_settings
