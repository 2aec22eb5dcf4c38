"""Re-exports devstack.redis_server (see stack/__init__.py)."""

from devstack.redis_server import *  # noqa: F403
from devstack.redis_server import RedisServer  # noqa: F401
