"""Secrets from the environment, or from a file the environment names (``NAME_FILE``).

Containers get secrets as files (compose ``secrets:``, Kubernetes Secret volumes at
``/run/secrets/...``), which keeps them out of ``docker inspect``/``kubectl describe`` and
out of every child's environment; processes started by hand keep using ``NAME``. Setting
both is a configuration error, not a silent precedence rule: an operator who rotated the
file would otherwise keep running on a stale variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class EnvSecretError(ValueError):
    """A secret's environment is contradictory or its file cannot be read (the message names no value)."""


def env_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$NAME``, else the contents of the file ``$NAME_FILE`` (one trailing newline removed), else None."""
    env = os.environ if environ is None else environ
    value, path = env.get(name), env.get(name + "_FILE")
    if value and path:
        raise EnvSecretError(f"set {name} or {name}_FILE, not both")
    if value:
        return value
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise EnvSecretError(f"{name}_FILE: cannot read {path}: {e.strerror}") from None
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if not text:
        raise EnvSecretError(f"{name}_FILE: {path} is empty")
    return text
