"""A small client for the control-plane API in tests (requests, a real HTTP client)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests


@dataclass
class Reply:
    status: int
    headers: dict
    text: str

    def json(self):
        import json

        return json.loads(self.text)

    @property
    def error(self) -> dict:
        return self.json()["error"]


class CP:
    def __init__(self, url: str, token: str | None = None, header: str = "Authorization") -> None:
        self.url, self.token, self.header = url.rstrip("/"), token, header
        self.session = requests.Session()

    def as_(self, token: str | None, header: str = "Authorization") -> "CP":
        return CP(self.url, token, header)

    def call(
        self,
        method: str,
        path: str,
        body=None,
        *,
        yaml: str | None = None,
        headers: dict | None = None,
        params: dict | None = None,
        raw: bytes | None = None,
        content_type: str | None = None,
    ) -> Reply:
        h = dict(headers or {})
        if self.token is not None:
            h[self.header] = f"Bearer {self.token}" if self.header == "Authorization" else self.token
        data = raw
        if yaml is not None:
            data, h["Content-Type"] = yaml.encode(), "application/yaml"
        elif body is not None:
            import json

            data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
        if content_type:
            h["Content-Type"] = content_type
        r = self.session.request(method, self.url + path, data=data, headers=h, params=params, timeout=60)
        return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.text)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def eventually(check, timeout: float = 15.0, what: str = "condition"):
    """Poll ``check`` until it returns a truthy value; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
