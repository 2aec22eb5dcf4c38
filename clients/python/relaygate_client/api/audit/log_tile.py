from http import HTTPStatus
from io import BytesIO
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error import Error
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    level: int,
    index: int,
    *,
    width: int | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(x_relaygate_workspace, Unset):
        headers["X-Relaygate-Workspace"] = x_relaygate_workspace

    params: dict[str, Any] = {}

    params["width"] = width

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/audit/tiles/{level}/{index}".format(
            level=quote(str(level), safe=""),
            index=quote(str(index), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Error | File | None:
    if response.status_code == 200:
        response_200 = File(payload=BytesIO(response.content))

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Error | File]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    level: int,
    index: int,
    *,
    client: AuthenticatedClient | Client,
    width: int | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | File]:
    """One C2SP tlog tile of the log (raw hashes, 32 bytes each: full, or the partial right edge)

    Args:
        level (int):
        index (int):
        width (int | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | File]
    """

    kwargs = _get_kwargs(
        level=level,
        index=index,
        width=width,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    level: int,
    index: int,
    *,
    client: AuthenticatedClient | Client,
    width: int | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | File | None:
    """One C2SP tlog tile of the log (raw hashes, 32 bytes each: full, or the partial right edge)

    Args:
        level (int):
        index (int):
        width (int | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | File
    """

    return sync_detailed(
        level=level,
        index=index,
        client=client,
        width=width,
        x_relaygate_workspace=x_relaygate_workspace,
    ).parsed


async def asyncio_detailed(
    level: int,
    index: int,
    *,
    client: AuthenticatedClient | Client,
    width: int | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | File]:
    """One C2SP tlog tile of the log (raw hashes, 32 bytes each: full, or the partial right edge)

    Args:
        level (int):
        index (int):
        width (int | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | File]
    """

    kwargs = _get_kwargs(
        level=level,
        index=index,
        width=width,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    level: int,
    index: int,
    *,
    client: AuthenticatedClient | Client,
    width: int | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | File | None:
    """One C2SP tlog tile of the log (raw hashes, 32 bytes each: full, or the partial right edge)

    Args:
        level (int):
        index (int):
        width (int | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | File
    """

    return (
        await asyncio_detailed(
            level=level,
            index=index,
            client=client,
            width=width,
            x_relaygate_workspace=x_relaygate_workspace,
        )
    ).parsed
