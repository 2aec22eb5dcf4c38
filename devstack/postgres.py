"""A throwaway PostgreSQL server on loopback, for the tests and `make run --postgres`.

Uses the machine's PostgreSQL binaries (Debian's ``postgresql`` package, which
`make` installs when missing). PostgreSQL refuses to run as root, so under
root the cluster is created and run as the ``postgres`` system user.

    python -m devstack.postgres start .run/pg     # prints the database URL
    python -m devstack.postgres stop .run/pg
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.processes import free_port


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL not found: apt-get install postgresql (make test does this)")


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class Postgres:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.home = Path(base).resolve()  # where `port` (and, under root, `location`) are kept
        self.base = self.home
        if os.geteuid() == 0:
            # The postgres user must reach the data directory, and a root-owned 0700
            # parent (pytest's temp dirs, say) would stop it: use a directory of its own.
            link = self.base / "location"
            if link.exists() and Path(link.read_text().strip()).is_dir():
                self.base = Path(link.read_text().strip())
            else:
                Path(base).mkdir(parents=True, exist_ok=True)
                self.base = Path(tempfile.mkdtemp(prefix="relaygate-pg-"))
                link.write_text(str(self.base))
        self.data = self.base / "data"
        self.port = port or free_port()
        self.bin = bindir()

    @classmethod
    def attach(cls, url: str) -> "Postgres":
        """A handle on a server started elsewhere (by `make test`), for reset_database()."""
        pg = cls.__new__(cls)
        pg.port = int(url.rsplit(":", 1)[1].split("/")[0])
        pg.bin = bindir()
        pg.home = pg.base = pg.data = None
        return pg

    @property
    def url(self) -> str:
        return f"postgresql://relaygate@127.0.0.1:{self.port}/relaygate"

    def _run(self, argv: list[str]) -> None:
        out = subprocess.run(_as_owner(argv), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stdout}\n{out.stderr}")

    def start(self) -> str:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "relaygate",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.base / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.base} -F -c fsync=off",
            ]
        )
        (self.home / "port").write_text(str(self.port))
        out = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "relaygate",
                "-d",
                "postgres",
                "-tAc",
                "SELECT 1 FROM pg_database WHERE datname = 'relaygate'",
            ],
            capture_output=True,
            text=True,
        )
        if out.stdout.strip() != "1":
            self._run(
                [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "relaygate", "relaygate"]
            )
        return self.url

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        if os.geteuid() == 0 and self.base.name.startswith("relaygate-pg-"):
            shutil.rmtree(self.base, ignore_errors=True)

    def reset_database(self) -> None:
        """Drop and recreate the database (a clean schema for a test)."""
        psql = [
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "relaygate",
            "-d",
            "postgres",
            "-c",
        ]
        subprocess.run(psql + ["DROP DATABASE IF EXISTS relaygate WITH (FORCE)"], check=True, capture_output=True)
        subprocess.run(psql + ["CREATE DATABASE relaygate"], check=True, capture_output=True)


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("start", "stop"):
        raise SystemExit("usage: python -m devstack.postgres start|stop DIR")
    base = Path(args[1])
    if args[0] == "start":
        port_file = base / "port"
        pg = Postgres(base, int(port_file.read_text()) if port_file.exists() else None)
        print(pg.start())
    else:
        port_file = base / "port"
        if port_file.exists():
            Postgres(base, int(port_file.read_text())).stop()


if __name__ == "__main__":
    main()
