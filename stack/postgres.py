"""Re-exports devstack.postgres (see stack/__init__.py)."""

from devstack.postgres import *  # noqa: F403
from devstack.postgres import Postgres  # noqa: F401
