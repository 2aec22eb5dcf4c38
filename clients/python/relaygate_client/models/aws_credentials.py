from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.aws_credentials_signing_service import AwsCredentialsSigningService

T = TypeVar("T", bound="AwsCredentials")


@_attrs_define
class AwsCredentials:
    """
    Attributes:
        key_id (str):
        access_key_id (str): RGK + the key id
        secret_access_key (str): derived from the key (never stored); changes when the key is rotated, ends when it is
            revoked
        signing_service (AwsCredentialsSigningService):
        endpoint_path (str): boto3's endpoint_url path: /v1/{workspace}/bedrock
    """

    key_id: str
    access_key_id: str
    secret_access_key: str
    signing_service: AwsCredentialsSigningService
    endpoint_path: str

    def to_dict(self) -> dict[str, Any]:
        key_id = self.key_id

        access_key_id = self.access_key_id

        secret_access_key = self.secret_access_key

        signing_service = self.signing_service.value

        endpoint_path = self.endpoint_path

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "key_id": key_id,
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
                "signing_service": signing_service,
                "endpoint_path": endpoint_path,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        key_id = d.pop("key_id")

        access_key_id = d.pop("access_key_id")

        secret_access_key = d.pop("secret_access_key")

        signing_service = AwsCredentialsSigningService(d.pop("signing_service"))

        endpoint_path = d.pop("endpoint_path")

        aws_credentials = cls(
            key_id=key_id,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            signing_service=signing_service,
            endpoint_path=endpoint_path,
        )

        return aws_credentials
