"""Unit tier: no servers, no external binaries; the whole tier runs in seconds (make test-fast)."""
