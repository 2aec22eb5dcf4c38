import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error import Error
from ...models.export_logs_endpoint import ExportLogsEndpoint
from ...models.export_logs_format import ExportLogsFormat
from ...models.log_entry import LogEntry
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    format_: ExportLogsFormat | Unset = ExportLogsFormat.JSON,
    limit: int | Unset = 10000,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    model: str | Unset = UNSET,
    status: int | Unset = UNSET,
    endpoint: ExportLogsEndpoint | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(x_relaygate_workspace, Unset):
        headers["X-Relaygate-Workspace"] = x_relaygate_workspace

    params: dict[str, Any] = {}

    json_format_: str | Unset = UNSET
    if not isinstance(format_, Unset):
        json_format_ = format_.value

    params["format"] = json_format_

    params["limit"] = limit

    json_from_: str | Unset = UNSET
    if not isinstance(from_, Unset):
        json_from_ = from_.isoformat()
    params["from"] = json_from_

    json_to: str | Unset = UNSET
    if not isinstance(to, Unset):
        json_to = to.isoformat()
    params["to"] = json_to

    params["model"] = model

    params["status"] = status

    json_endpoint: str | Unset = UNSET
    if not isinstance(endpoint, Unset):
        json_endpoint = endpoint.value

    params["endpoint"] = json_endpoint

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/logs/export",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Error | list[LogEntry] | None:
    if response.status_code == 200:
        response_200 = []
        _response_200 = response.json()
        for response_200_item_data in _response_200:
            response_200_item = LogEntry.from_dict(response_200_item_data)

            response_200.append(response_200_item)

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


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Error | list[LogEntry]]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    format_: ExportLogsFormat | Unset = ExportLogsFormat.JSON,
    limit: int | Unset = 10000,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    model: str | Unset = UNSET,
    status: int | Unset = UNSET,
    endpoint: ExportLogsEndpoint | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | list[LogEntry]]:
    """Request logs as CSV or JSON

    Args:
        format_ (ExportLogsFormat | Unset):  Default: ExportLogsFormat.JSON.
        limit (int | Unset):  Default: 10000.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        model (str | Unset):
        status (int | Unset):
        endpoint (ExportLogsEndpoint | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | list[LogEntry]]
    """

    kwargs = _get_kwargs(
        format_=format_,
        limit=limit,
        from_=from_,
        to=to,
        model=model,
        status=status,
        endpoint=endpoint,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    format_: ExportLogsFormat | Unset = ExportLogsFormat.JSON,
    limit: int | Unset = 10000,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    model: str | Unset = UNSET,
    status: int | Unset = UNSET,
    endpoint: ExportLogsEndpoint | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | list[LogEntry] | None:
    """Request logs as CSV or JSON

    Args:
        format_ (ExportLogsFormat | Unset):  Default: ExportLogsFormat.JSON.
        limit (int | Unset):  Default: 10000.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        model (str | Unset):
        status (int | Unset):
        endpoint (ExportLogsEndpoint | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | list[LogEntry]
    """

    return sync_detailed(
        client=client,
        format_=format_,
        limit=limit,
        from_=from_,
        to=to,
        model=model,
        status=status,
        endpoint=endpoint,
        x_relaygate_workspace=x_relaygate_workspace,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    format_: ExportLogsFormat | Unset = ExportLogsFormat.JSON,
    limit: int | Unset = 10000,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    model: str | Unset = UNSET,
    status: int | Unset = UNSET,
    endpoint: ExportLogsEndpoint | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[Error | list[LogEntry]]:
    """Request logs as CSV or JSON

    Args:
        format_ (ExportLogsFormat | Unset):  Default: ExportLogsFormat.JSON.
        limit (int | Unset):  Default: 10000.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        model (str | Unset):
        status (int | Unset):
        endpoint (ExportLogsEndpoint | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error | list[LogEntry]]
    """

    kwargs = _get_kwargs(
        format_=format_,
        limit=limit,
        from_=from_,
        to=to,
        model=model,
        status=status,
        endpoint=endpoint,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    format_: ExportLogsFormat | Unset = ExportLogsFormat.JSON,
    limit: int | Unset = 10000,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    model: str | Unset = UNSET,
    status: int | Unset = UNSET,
    endpoint: ExportLogsEndpoint | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Error | list[LogEntry] | None:
    """Request logs as CSV or JSON

    Args:
        format_ (ExportLogsFormat | Unset):  Default: ExportLogsFormat.JSON.
        limit (int | Unset):  Default: 10000.
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        model (str | Unset):
        status (int | Unset):
        endpoint (ExportLogsEndpoint | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error | list[LogEntry]
    """

    return (
        await asyncio_detailed(
            client=client,
            format_=format_,
            limit=limit,
            from_=from_,
            to=to,
            model=model,
            status=status,
            endpoint=endpoint,
            x_relaygate_workspace=x_relaygate_workspace,
        )
    ).parsed
