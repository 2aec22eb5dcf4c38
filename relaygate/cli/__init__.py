"""The ``relaygate`` command: ``verify`` (the offline evidence verifier, relaygate/evidence/cli.py)
and ``policy`` (the policy author's workflow, relaygate/cli/policy.py)."""
