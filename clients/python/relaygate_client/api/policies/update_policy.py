from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error import Error
from ...models.policy import Policy
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    policy_id: str,
    *,
    body: File | File | File | Unset = UNSET,
    activate: bool | Unset = True,
    x_relaygate_workspace: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(x_relaygate_workspace, Unset):
        headers["X-Relaygate-Workspace"] = x_relaygate_workspace

    params: dict[str, Any] = {}

    params["activate"] = activate

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/v1/policies/{policy_id}".format(
            policy_id=quote(str(policy_id), safe=""),
        ),
        "params": params,
    }

    if isinstance(body, File):
        _kwargs["content"] = body.payload
        headers["Content-Type"] = "application/yaml"
    if isinstance(body, File):
        _kwargs["content"] = body.payload
        headers["Content-Type"] = "application/x-yaml"
    if isinstance(body, File):
        _kwargs["content"] = body.payload
        headers["Content-Type"] = "text/yaml"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Error | Policy | None:
    if response.status_code == 200:
        response_200 = Policy.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = Error.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Error.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Error.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = Error.from_dict(response.json())

        return response_404

    if response.status_code == 405:
        response_405 = Error.from_dict(response.json())

        return response_405

    if response.status_code == 413:
        response_413 = Error.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Error.from_dict(response.json())

        return response_415

    if response.status_code == 429:
        response_429 = Error.from_dict(response.json())

        return response_429

    if response.status_code == 500:
        response_500 = Error.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = Error.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Error | Policy]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    policy_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: File | File | File | Unset = UNSET,
    activate: bool | Unset = True,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | Policy]:
    """Publish a new version atomically (old versions stay readable)

    Args:
        policy_id (str):
        activate (bool | Unset):  Default: True.
        x_relaygate_workspace (str | Unset):
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | Policy]
    """

    kwargs = _get_kwargs(
        policy_id=policy_id,
        body=body,
        activate=activate,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    policy_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: File | File | File | Unset = UNSET,
    activate: bool | Unset = True,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | Policy | None:
    """Publish a new version atomically (old versions stay readable)

    Args:
        policy_id (str):
        activate (bool | Unset):  Default: True.
        x_relaygate_workspace (str | Unset):
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | Policy
    """

    return sync_detailed(
        policy_id=policy_id,
        client=client,
        body=body,
        activate=activate,
        x_relaygate_workspace=x_relaygate_workspace,
    ).parsed


async def asyncio_detailed(
    policy_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: File | File | File | Unset = UNSET,
    activate: bool | Unset = True,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | Policy]:
    """Publish a new version atomically (old versions stay readable)

    Args:
        policy_id (str):
        activate (bool | Unset):  Default: True.
        x_relaygate_workspace (str | Unset):
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | Policy]
    """

    kwargs = _get_kwargs(
        policy_id=policy_id,
        body=body,
        activate=activate,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    policy_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: File | File | File | Unset = UNSET,
    activate: bool | Unset = True,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | Policy | None:
    """Publish a new version atomically (old versions stay readable)

    Args:
        policy_id (str):
        activate (bool | Unset):  Default: True.
        x_relaygate_workspace (str | Unset):
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)
        body (File): the policy as a YAML document (UTF-8)

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | Policy
    """

    return (
        await asyncio_detailed(
            policy_id=policy_id,
            client=client,
            body=body,
            activate=activate,
            x_relaygate_workspace=x_relaygate_workspace,
        )
    ).parsed
