"""Compatibility names for external harnesses written before the namespace move (issue 12).

The development runner lives in ``devstack/``; ``../shared/peers/run.py`` and the transport-floor
harness still import ``stack.processes``, ``stack.redis_server`` and ``stack.postgres``. These
modules only re-export ``devstack``'s; nothing in relaygate imports them, and like ``devstack`` they
are not in the wheel.
"""
