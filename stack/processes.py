"""Re-exports devstack.processes (see stack/__init__.py)."""

from devstack.processes import *  # noqa: F403
from devstack.processes import ROOT, Fleet, Stack, envoy_binary, free_port, http_ok, port_open, wait_until  # noqa: F401
