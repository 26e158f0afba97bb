#!/usr/bin/env python3
"""HEALTHCHECK of every Interloper service image (also usable by hand in a container).

    interloper-healthcheck [PATH]      GET http://127.0.0.1:$INTERLOPER_HTTP_PORT/PATH (default /readyz)

Exit 0 when the process answers 200, 1 otherwise. Standard library only, no proxy (an
HTTP_PROXY in the container's environment must not route the probe elsewhere).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/readyz"
    if not path.startswith("/"):
        path = "/" + path
    port = os.environ.get("INTERLOPER_HTTP_PORT", "8000")
    url = f"http://127.0.0.1:{port}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
