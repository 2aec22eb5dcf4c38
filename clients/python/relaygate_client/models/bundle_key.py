from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.bundle_key_algorithm import BundleKeyAlgorithm

T = TypeVar("T", bound="BundleKey")


@_attrs_define
class BundleKey:
    """
    Attributes:
        key_id (str):
        algorithm (BundleKeyAlgorithm): the JWS algorithm of the bundle signature (an OPA agent's keys.<name>.algorithm)
        public_key (str):
    """

    key_id: str
    algorithm: BundleKeyAlgorithm
    public_key: str

    def to_dict(self) -> dict[str, Any]:
        key_id = self.key_id

        algorithm = self.algorithm.value

        public_key = self.public_key

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "key_id": key_id,
                "algorithm": algorithm,
                "public_key": public_key,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        key_id = d.pop("key_id")

        algorithm = BundleKeyAlgorithm(d.pop("algorithm"))

        public_key = d.pop("public_key")

        bundle_key = cls(
            key_id=key_id,
            algorithm=algorithm,
            public_key=public_key,
        )

        return bundle_key
