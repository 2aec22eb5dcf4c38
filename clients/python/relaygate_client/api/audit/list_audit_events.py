import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.audit_page import AuditPage
from ...models.error import Error
from ...models.list_audit_events_actor_kind import ListAuditEventsActorKind
from ...models.list_audit_events_decision import ListAuditEventsDecision
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    user: str | Unset = UNSET,
    key_id: str | Unset = UNSET,
    model: str | Unset = UNSET,
    policy: str | Unset = UNSET,
    decision: ListAuditEventsDecision | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    actor_kind: ListAuditEventsActorKind | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(x_relaygate_workspace, Unset):
        headers["X-Relaygate-Workspace"] = x_relaygate_workspace

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    json_from_: str | Unset = UNSET
    if not isinstance(from_, Unset):
        json_from_ = from_.isoformat()
    params["from"] = json_from_

    json_to: str | Unset = UNSET
    if not isinstance(to, Unset):
        json_to = to.isoformat()
    params["to"] = json_to

    params["user"] = user

    params["key_id"] = key_id

    params["model"] = model

    params["policy"] = policy

    json_decision: str | Unset = UNSET
    if not isinstance(decision, Unset):
        json_decision = decision.value

    params["decision"] = json_decision

    params["kind"] = kind

    params["actor"] = actor

    json_actor_kind: str | Unset = UNSET
    if not isinstance(actor_kind, Unset):
        json_actor_kind = actor_kind.value

    params["actor_kind"] = json_actor_kind

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/audit/events",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> AuditPage | Error | None:
    if response.status_code == 200:
        response_200 = AuditPage.from_dict(response.json())

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[AuditPage | Error]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    user: str | Unset = UNSET,
    key_id: str | Unset = UNSET,
    model: str | Unset = UNSET,
    policy: str | Unset = UNSET,
    decision: ListAuditEventsDecision | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    actor_kind: ListAuditEventsActorKind | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[AuditPage | Error]:
    """The audit feed, newest first, with a stable cursor (admin: every workspace unless X-Relaygate-
    Workspace names one)

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        user (str | Unset):
        key_id (str | Unset):
        model (str | Unset):
        policy (str | Unset):
        decision (ListAuditEventsDecision | Unset):
        kind (str | Unset):
        actor (str | Unset):
        actor_kind (ListAuditEventsActorKind | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuditPage | Error]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        from_=from_,
        to=to,
        user=user,
        key_id=key_id,
        model=model,
        policy=policy,
        decision=decision,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    user: str | Unset = UNSET,
    key_id: str | Unset = UNSET,
    model: str | Unset = UNSET,
    policy: str | Unset = UNSET,
    decision: ListAuditEventsDecision | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    actor_kind: ListAuditEventsActorKind | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> AuditPage | Error | None:
    """The audit feed, newest first, with a stable cursor (admin: every workspace unless X-Relaygate-
    Workspace names one)

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        user (str | Unset):
        key_id (str | Unset):
        model (str | Unset):
        policy (str | Unset):
        decision (ListAuditEventsDecision | Unset):
        kind (str | Unset):
        actor (str | Unset):
        actor_kind (ListAuditEventsActorKind | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuditPage | Error
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        from_=from_,
        to=to,
        user=user,
        key_id=key_id,
        model=model,
        policy=policy,
        decision=decision,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind,
        x_relaygate_workspace=x_relaygate_workspace,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    user: str | Unset = UNSET,
    key_id: str | Unset = UNSET,
    model: str | Unset = UNSET,
    policy: str | Unset = UNSET,
    decision: ListAuditEventsDecision | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    actor_kind: ListAuditEventsActorKind | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> Response[AuditPage | Error]:
    """The audit feed, newest first, with a stable cursor (admin: every workspace unless X-Relaygate-
    Workspace names one)

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        user (str | Unset):
        key_id (str | Unset):
        model (str | Unset):
        policy (str | Unset):
        decision (ListAuditEventsDecision | Unset):
        kind (str | Unset):
        actor (str | Unset):
        actor_kind (ListAuditEventsActorKind | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuditPage | Error]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        from_=from_,
        to=to,
        user=user,
        key_id=key_id,
        model=model,
        policy=policy,
        decision=decision,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind,
        x_relaygate_workspace=x_relaygate_workspace,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    from_: datetime.datetime | Unset = UNSET,
    to: datetime.datetime | Unset = UNSET,
    user: str | Unset = UNSET,
    key_id: str | Unset = UNSET,
    model: str | Unset = UNSET,
    policy: str | Unset = UNSET,
    decision: ListAuditEventsDecision | Unset = UNSET,
    kind: str | Unset = UNSET,
    actor: str | Unset = UNSET,
    actor_kind: ListAuditEventsActorKind | Unset = UNSET,
    x_relaygate_workspace: str | Unset = UNSET,
) -> AuditPage | Error | None:
    """The audit feed, newest first, with a stable cursor (admin: every workspace unless X-Relaygate-
    Workspace names one)

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):
        from_ (datetime.datetime | Unset):
        to (datetime.datetime | Unset):
        user (str | Unset):
        key_id (str | Unset):
        model (str | Unset):
        policy (str | Unset):
        decision (ListAuditEventsDecision | Unset):
        kind (str | Unset):
        actor (str | Unset):
        actor_kind (ListAuditEventsActorKind | Unset):
        x_relaygate_workspace (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuditPage | Error
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            from_=from_,
            to=to,
            user=user,
            key_id=key_id,
            model=model,
            policy=policy,
            decision=decision,
            kind=kind,
            actor=actor,
            actor_kind=actor_kind,
            x_relaygate_workspace=x_relaygate_workspace,
        )
    ).parsed
