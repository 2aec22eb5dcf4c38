"""A sidecar started before its control plane's first start waits for the pinned key file
(compose and pods start both at once), and says what is missing when it never comes."""

import asyncio

import pytest

from relaygate.contract.config import ConfigError
from relaygate.extproc import server


def test_the_sidecar_waits_for_the_key_the_control_plane_writes(tmp_path):
    key = tmp_path / "trust" / "bundle-signing.pub"

    async def main():
        async def write_later():
            await asyncio.sleep(0.3)
            key.parent.mkdir()
            key.write_bytes(b"-----BEGIN PUBLIC KEY-----\n")

        task = asyncio.create_task(write_later())
        got = await server._control_plane_key(key)
        await task
        return got

    assert asyncio.run(main()) == b"-----BEGIN PUBLIC KEY-----\n"


def test_a_key_that_never_comes_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "KEY_WAIT_SECONDS", 0.2)
    with pytest.raises(ConfigError, match="the control plane writes it on its first start"):
        asyncio.run(server._control_plane_key(tmp_path / "missing.pub"))
