"""A throwaway Redis server on loopback, for the shared-budget tests.

Uses Debian's ``redis-server`` (which `make` installs when missing). No
persistence: the tests start it empty and throw it away.

    python -m devstack.redis_server start .run/redis     # prints the redis:// URL
    python -m devstack.redis_server stop .run/redis
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.processes import free_port, wait_until


class RedisServer:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = Path(base).resolve()
        port_file = self.base / "port"
        self.port = port or (int(port_file.read_text()) if port_file.exists() else free_port())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server (make test does this)")
        self.base.mkdir(parents=True, exist_ok=True)
        if self._ping():
            return self.url
        subprocess.run(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.base),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.base / "redis.pid"),
                "--logfile",
                str(self.base / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
            capture_output=True,
        )
        (self.base / "port").write_text(str(self.port))
        wait_until(self._ping, 15, f"redis-server (log: {self.base / 'redis.log'})")
        return self.url

    def stop(self) -> None:
        pid_file = self.base / "redis.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("start", "stop"):
        raise SystemExit("usage: python -m devstack.redis_server start|stop DIR")
    server = RedisServer(Path(args[1]))
    if args[0] == "start":
        print(server.start())
    else:
        server.stop()


if __name__ == "__main__":
    main()
