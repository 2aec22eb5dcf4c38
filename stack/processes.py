"""Re-exports devstack.processes (see stack/__init__.py), with one difference: ``Stack`` serves
plaintext unless told otherwise. ``../shared/peers/run.py`` measures every path in plaintext (plain
Envoy, Envoy AI Gateway, Portkey, LiteLLM) and calls its upstream with a bare urllib, which does not
know devstack's local CA; relaygate's own stacks default to TLS since the TLS work, so the peer run
could not even preflight relaygate."""

from dataclasses import dataclass

from devstack.processes import *  # noqa: F403
from devstack.processes import ROOT, Fleet, envoy_binary, free_port, http_ok, port_open, wait_until  # noqa: F401
from devstack.processes import Stack as _TlsStack


@dataclass
class Stack(_TlsStack):
    tls: bool = False
