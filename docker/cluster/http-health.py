#!/usr/bin/python3
"""A container health check: GET the URL given, healthy on 200 (Patroni's /health, etcd's
/health). One word per argument, as podman's Docker API wants health check arguments."""

import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=4) as answer:  # noqa: S310
        sys.exit(0 if answer.status == 200 else 1)
except (OSError, urllib.error.URLError) as exc:
    print(exc)
    sys.exit(1)
