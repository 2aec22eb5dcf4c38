"""Re-exports relaygate.envoy.config (see stack/__init__.py)."""

from relaygate.envoy.config import *  # noqa: F403
from relaygate.envoy.config import T, _address, _extproc_cluster, render  # noqa: F401
