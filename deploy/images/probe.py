"""Container health probe: exit 0 when GET $RELAYGATE_PROBE_URL answers 2xx within 3 s.

Run by the images' HEALTHCHECK (podman, docker) with the venv's python, so the image needs no
shell or curl. Kubernetes ignores HEALTHCHECK; the Helm chart probes the same URLs with httpGet.
The gateway image runs as two containers and each sets its own URL: the policy container
http://127.0.0.1:9464/healthz (the image default), the envoy container
http://127.0.0.1:8082/ready. An https URL is probed without verifying the certificate: the
probe talks to its own container over loopback and asks only whether it answers.
"""

import os
import ssl
import sys
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RELAYGATE_PROBE_URL", "")
if not url:
    sys.exit("probe: no URL (RELAYGATE_PROBE_URL)")
ctx = ssl._create_unverified_context() if url.startswith("https:") else None
try:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as r:
        sys.exit(0 if 200 <= r.status < 300 else 1)
except Exception as e:  # any failure is "unhealthy", with the reason in podman's health log
    sys.exit(f"probe: {url}: {e}")
