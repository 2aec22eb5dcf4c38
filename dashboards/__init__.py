"""Grafana dashboards for relaygate, as code (dashboards/generate.py writes dashboards/*.json)."""
