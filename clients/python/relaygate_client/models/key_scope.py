from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.key_scope_endpoints_item import KeyScopeEndpointsItem
from ..models.key_scope_permissions_item import KeyScopePermissionsItem
from ..types import UNSET, Unset

T = TypeVar("T", bound="KeyScope")


@_attrs_define
class KeyScope:
    """
    Attributes:
        endpoints (list[KeyScopeEndpointsItem] | Unset):
        models (list[str] | Unset): model names, or globs such as 'gpt-4o*' ('*' never matches a '.')
        permissions (list[KeyScopePermissionsItem] | Unset): gateway:call is needed to call the gateway or /api/relay;
            'relay' is its old name
    """

    endpoints: list[KeyScopeEndpointsItem] | Unset = UNSET
    models: list[str] | Unset = UNSET
    permissions: list[KeyScopePermissionsItem] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        endpoints: list[str] | Unset = UNSET
        if not isinstance(self.endpoints, Unset):
            endpoints = []
            for endpoints_item_data in self.endpoints:
                endpoints_item = endpoints_item_data.value
                endpoints.append(endpoints_item)

        models: list[str] | Unset = UNSET
        if not isinstance(self.models, Unset):
            models = self.models

        permissions: list[str] | Unset = UNSET
        if not isinstance(self.permissions, Unset):
            permissions = []
            for permissions_item_data in self.permissions:
                permissions_item = permissions_item_data.value
                permissions.append(permissions_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if endpoints is not UNSET:
            field_dict["endpoints"] = endpoints
        if models is not UNSET:
            field_dict["models"] = models
        if permissions is not UNSET:
            field_dict["permissions"] = permissions

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _endpoints = d.pop("endpoints", UNSET)
        endpoints: list[KeyScopeEndpointsItem] | Unset = UNSET
        if _endpoints is not UNSET:
            endpoints = []
            for endpoints_item_data in _endpoints:
                endpoints_item = KeyScopeEndpointsItem(endpoints_item_data)

                endpoints.append(endpoints_item)

        models = cast(list[str], d.pop("models", UNSET))

        _permissions = d.pop("permissions", UNSET)
        permissions: list[KeyScopePermissionsItem] | Unset = UNSET
        if _permissions is not UNSET:
            permissions = []
            for permissions_item_data in _permissions:
                permissions_item = KeyScopePermissionsItem(permissions_item_data)

                permissions.append(permissions_item)

        key_scope = cls(
            endpoints=endpoints,
            models=models,
            permissions=permissions,
        )

        return key_scope
