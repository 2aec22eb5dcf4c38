from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.signing_key_input_proof import SigningKeyInputProof


T = TypeVar("T", bound="SigningKeyInput")


@_attrs_define
class SigningKeyInput:
    """
    Attributes:
        key_id (str):
        public_key (str):
        proof (SigningKeyInputProof): key.registered custody event (DSSE) signed by this key
    """

    key_id: str
    public_key: str
    proof: SigningKeyInputProof

    def to_dict(self) -> dict[str, Any]:
        key_id = self.key_id

        public_key = self.public_key

        proof = self.proof.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "key_id": key_id,
                "public_key": public_key,
                "proof": proof,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.signing_key_input_proof import SigningKeyInputProof  # noqa: PLC0415

        d = dict(src_dict)
        key_id = d.pop("key_id")

        public_key = d.pop("public_key")

        proof = SigningKeyInputProof.from_dict(d.pop("proof"))

        signing_key_input = cls(
            key_id=key_id,
            public_key=public_key,
            proof=proof,
        )

        return signing_key_input
