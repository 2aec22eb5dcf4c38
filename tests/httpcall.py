"""curl as the client for tests that need exact bytes, odd headers or huge bodies."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def receipt_id(self) -> str | None:
        return self.headers.get("x-relayone-receipt-id")


def curl(
    url: str, body: bytes | str | None = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> Reply:
    with tempfile.NamedTemporaryFile() as hdr, tempfile.NamedTemporaryFile() as data:
        cmd = ["curl", "-sS", "-X", method, url, "-D", hdr.name, "-o", "-", "--max-time", "30"]
        for k, v in (headers or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        if body is not None:
            data.write(body.encode() if isinstance(body, str) else body)
            data.flush()
            cmd += ["--data-binary", f"@{data.name}"]
        out = subprocess.run(cmd, capture_output=True, check=True).stdout
        lines = open(hdr.name, "rb").read().decode("latin-1").split("\r\n")
    status_lines = [i for i, line in enumerate(lines) if line.startswith("HTTP/")]
    last = status_lines[-1]
    status = int(lines[last].split()[1])
    hdrs = {}
    for line in lines[last + 1 :]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return Reply(status, hdrs, out)


def chat_body(model: str = "gpt-4o-mini", content: str = "hi", **extra) -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}], **extra})
