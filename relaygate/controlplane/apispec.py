"""The OpenAPI document drives the router: auth, permission, parameters and body per operation.

Each operation in relaygate/controlplane/openapi.yaml names its handler (operationId),
who may call it (``x-relaygate-auth``: public, fleet, admin or workspace) and
the permission it needs (``x-relaygate-permission``). Query, path and header
parameters are coerced and validated with their JSON Schemas, JSON bodies
with theirs (jsonschema, draft 2020-12, as OpenAPI 3.1 uses), before a handler
runs; so what the document says and what the server accepts cannot drift.

Every JSON body is also refused (400) when nested deeper than
:data:`MAX_JSON_DEPTH` levels, whatever its schema: documents are stored and
later served (relay metadata, upstream overrides, audit details), and a deep
one would fail to encode on every read. A schema may cap a free-form value's
encoded size with ``x-relaygate-max-bytes`` (relay metadata does).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
import yaml
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from relaygate.controlplane.errors import ApiError

SPEC_PATH = Path(__file__).resolve().parent / "openapi.yaml"
_URI = "urn:relaygate:openapi"
MAX_JSON_DEPTH = 64  # well inside orjson's encoder limit (254) once a stored value is wrapped in a reply


def json_depth_over(doc: Any, limit: int = MAX_JSON_DEPTH) -> list | None:
    """The path to the first value nested deeper than ``limit`` levels, or None (iterative: no recursion)."""
    stack: list[tuple[Any, int, list]] = [(doc, 1, [])]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > limit:
            return path
        for k, v in items:
            if isinstance(v, (dict, list)):
                stack.append((v, depth + 1, path + [k] if len(path) < 8 else path))
    return None


def nul_path(doc: Any) -> list | None:
    """The path to the first string (a key or a value) holding U+0000, or None.

    PostgreSQL's text and JSONB columns cannot store it (the driver raises: a 500), and no
    name, model, user or metadata needs it, so every input refuses it with a 400 up front.
    """
    stack: list[tuple[Any, list]] = [(doc, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and "\x00" in k:
                    return path + [k]
                stack.append((v, path + [k]))
        elif isinstance(value, list):
            stack.extend((v, path + [i]) for i, v in enumerate(value))
    return None


def _nul_error(where: str) -> ApiError:
    return ApiError(
        400,
        "invalid_request",
        f"{where}: NUL characters (U+0000) are not accepted",
        {"parameter": where, "provided": None, "expected": "text without U+0000"},
    )


def _max_bytes(validator, limit, instance, schema):
    """``x-relaygate-max-bytes``: the value's size encoded as JSON."""
    try:
        size = len(orjson.dumps(instance))
    except orjson.JSONEncodeError:
        yield ValidationError("cannot be encoded as JSON")
        return
    if size > limit:
        yield ValidationError(f"is {size} bytes as JSON; the limit is {limit} bytes")


_Validator = validators.extend(Draft202012Validator, {"x-relaygate-max-bytes": _max_bytes})


def load_spec(path: Path = SPEC_PATH) -> dict:
    return yaml.safe_load(path.read_text())


def _absolute_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#/") else _absolute_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


@dataclass
class Param:
    name: str
    location: str
    required: bool
    schema: dict
    validator: Draft202012Validator


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    auth: str
    permission: str | None
    params: list[Param] = field(default_factory=list)
    body_types: tuple[str, ...] = ()
    body_required: bool = False
    body_validator: Draft202012Validator | None = None
    deprecated: dict | None = None  # x-relaygate-deprecated: since, sunset, successor (openapi.py Deprecated)

    _dates: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        """The Deprecation and Sunset values are the same on every call: formatted once, here."""
        if self.deprecated:
            since = datetime.strptime(self.deprecated["since"], "%Y-%m-%d").replace(tzinfo=timezone.utc)
            sunset = datetime.strptime(self.deprecated["sunset"], "%Y-%m-%d").replace(tzinfo=timezone.utc)
            self._dates = {"Deprecation": f"@{int(since.timestamp())}", "Sunset": format_datetime(sunset, usegmt=True)}

    def deprecation_headers(self, path_params: Mapping[str, str]) -> dict[str, str]:
        """RFC 9745 Deprecation, RFC 8594 Sunset and the successor Link, for a deprecated operation."""
        if not self.deprecated:
            return {}
        path = self.deprecated["successor"].partition(" ")[2]
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return {**self._dates, "Link": f'<{path}>; rel="successor-version"'}


def _type_of(schema: dict) -> str:
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t


def _coerce(raw: str, schema: dict) -> Any:
    t = _type_of(schema)
    if t == "integer":
        return int(raw)
    if t == "number":
        return float(raw)
    if t == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise ValueError(raw)
    if t == "array":
        items = schema.get("items", {})
        return [_coerce(x, items) for x in raw.split(",") if x != ""]
    return raw


def _missing_property(err: ValidationError) -> str | None:
    """The first required property an object lacks, when that is the error."""
    if err.validator != "required" or not isinstance(err.instance, dict):
        return None
    return next((str(p) for p in err.validator_value or () if p not in err.instance), None)


def _first_error(validator: Draft202012Validator, value: Any):
    return min(validator.iter_errors(value), key=lambda e: (len(e.path), str(e.path)), default=None)


class Router:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        resolved = _absolute_refs(copy.deepcopy(spec))
        registry = Registry().with_resource(_URI, Resource.from_contents(resolved, default_specification=DRAFT202012))
        self._registry = registry
        self.operations: list[Operation] = []
        for path, item in resolved.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                params = []
                for p in shared + op.get("parameters", []):
                    p = self._deref(p)
                    params.append(
                        Param(
                            p["name"],
                            p["in"],
                            p.get("required", False),
                            p.get("schema", {}),
                            self._validator(p.get("schema", {})),
                        )
                    )
                body = op.get("requestBody")
                types, validator, required = (), None, False
                if body:
                    body = self._deref(body)
                    types = tuple(body.get("content", {}))
                    required = body.get("required", False)
                    js = body.get("content", {}).get("application/json", {}).get("schema")
                    validator = self._validator(js) if js else None
                self.operations.append(
                    Operation(
                        method.upper(),
                        path,
                        op["operationId"],
                        op.get("x-relaygate-auth", "workspace"),
                        op.get("x-relaygate-permission"),
                        params,
                        types,
                        required,
                        validator,
                        op.get("x-relaygate-deprecated"),
                    )
                )

    def _deref(self, node: dict) -> dict:
        while "$ref" in node:
            node = self._registry.resolver().lookup(node["$ref"]).contents
        return node

    def _validator(self, schema: dict) -> Draft202012Validator:
        return _Validator(schema, registry=self._registry)

    @staticmethod
    def params(op: Operation, request) -> dict:
        """Validated parameters by name (path, query and header), defaults applied."""
        out: dict[str, Any] = {}
        for p in op.params:
            if p.location == "path":
                raw = request.match_info.get(p.name)
            elif p.location == "query":
                raw = request.query.get(p.name)
            elif p.location == "header":
                raw = request.headers.get(p.name)
            else:
                continue
            if raw is not None and "\x00" in raw:
                raise _nul_error(p.name)
            if raw is None:
                if p.required:
                    raise ApiError(
                        400,
                        "invalid_request",
                        f"missing required {p.location} parameter '{p.name}'",
                        {"parameter": p.name, "provided": None, "expected": _type_of(p.schema)},
                    )
                if "default" in p.schema:
                    out[p.name] = p.schema["default"]
                continue
            try:
                value = _coerce(raw, p.schema)
            except ValueError:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"{p.location} parameter '{p.name}' must be {_type_of(p.schema)}",
                    {"parameter": p.name, "provided": raw[:200], "expected": _type_of(p.schema)},
                ) from None
            err = _first_error(p.validator, value)
            if err is not None:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"{p.location} parameter '{p.name}': {err.message[:300]}",
                    {"parameter": p.name, "provided": raw[:200], "expected": _type_of(p.schema)},
                )
            out[p.name] = value
        return out

    @staticmethod
    async def body(op: Operation, request) -> Any:
        """The request body: parsed and validated JSON, or text for YAML operations."""
        if not op.body_types:
            return None
        try:
            raw = await request.read()
        except (RequestPayloadError, HttpProcessingError) as e:  # corrupt gzip, a broken chunk, ...
            why = " ".join(str(e).split()) or type(e).__name__
            raise ApiError(400, "invalid_request", f"request body could not be read: {why}") from None
        if not raw:
            if op.body_required:
                raise ApiError(
                    400,
                    "invalid_request",
                    "request body is required",
                    {"parameter": "body", "provided": None, "expected": " or ".join(op.body_types)},
                )
            return None
        ctype = (request.content_type or "").lower()
        if ctype not in op.body_types:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"content type must be {' or '.join(op.body_types)}, not '{ctype or 'none'}'",
            )
        if ctype != "application/json":
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "invalid_request", "request body must be UTF-8 text") from None
            if "\x00" in text:
                raise _nul_error("body")
            return text
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "invalid_json", f"request body is not valid JSON: {e}") from None
        deep = json_depth_over(doc)
        if deep is not None:
            where = "/".join(str(x) for x in deep) or "body"
            raise ApiError(
                400,
                "invalid_request",
                f"{where}: the body is nested too deep (more than {MAX_JSON_DEPTH} levels)",
                {"parameter": where, "provided": None, "expected": f"at most {MAX_JSON_DEPTH} levels of nesting"},
            )
        nul = nul_path(doc)
        if nul is not None:
            raise _nul_error("/".join(str(x) for x in nul) or "body")
        if op.body_validator is not None:
            err = _first_error(op.body_validator, doc)
            if err is not None:
                missing = _missing_property(err)
                if missing is not None:  # name the field, as RelayPlane's own errors do ("parameter": "to")
                    where = "/".join([*map(str, err.path), missing])
                    props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
                    expected = (props.get(missing) or {}).get("type") if isinstance(props, dict) else None
                    raise ApiError(
                        400,
                        "invalid_request",
                        f"Missing required parameter: {where}",
                        {"parameter": where, "provided": None, "expected": expected},
                    )
                where = "/".join(str(x) for x in err.path) or "body"
                provided = err.instance if isinstance(err.instance, (str, int, float, bool)) else None
                raise ApiError(
                    400,
                    "invalid_request",
                    f"{where}: {err.message[:300]}",
                    {
                        "parameter": where,
                        "provided": provided,
                        "expected": err.schema.get("type") if isinstance(err.schema, dict) else None,
                    },
                )
        return doc


Handler = Callable[..., Any]
