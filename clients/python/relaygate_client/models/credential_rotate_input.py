from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.credential_rotate_input_kind import CredentialRotateInputKind
from ..types import UNSET, Unset

T = TypeVar("T", bound="CredentialRotateInput")


@_attrs_define
class CredentialRotateInput:
    """
    Attributes:
        kind (CredentialRotateInputKind):
        instance_id (str | Unset):
        name (str | Unset): provider credential name
        secret (str | Unset):
    """

    kind: CredentialRotateInputKind
    instance_id: str | Unset = UNSET
    name: str | Unset = UNSET
    secret: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        kind = self.kind.value

        instance_id = self.instance_id

        name = self.name

        secret = self.secret

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "kind": kind,
            }
        )
        if instance_id is not UNSET:
            field_dict["instance_id"] = instance_id
        if name is not UNSET:
            field_dict["name"] = name
        if secret is not UNSET:
            field_dict["secret"] = secret

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kind = CredentialRotateInputKind(d.pop("kind"))

        instance_id = d.pop("instance_id", UNSET)

        name = d.pop("name", UNSET)

        secret = d.pop("secret", UNSET)

        credential_rotate_input = cls(
            kind=kind,
            instance_id=instance_id,
            name=name,
            secret=secret,
        )

        return credential_rotate_input
