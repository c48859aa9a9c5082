"""`python -m gateway_project.probe [PATH]`: the container's health check (slim has no curl).

Asks this node's own GATEWAY_BIND port for PATH (default /health) with `Host: localhost`, so
the check passes whatever public names ALLOWED_HOSTS lists, as long as it includes localhost.
Exit status 0 when the answer is 200, 1 otherwise.
"""

from __future__ import annotations

import http.client
import os
import sys

PROBE_HOST_HEADER = "localhost"


def probe_port(bind: str) -> int:
    """The TCP port of a gunicorn bind address (`0.0.0.0:8000`, `[::]:8000`, `:8000`)."""
    _, _, port = bind.rpartition(":")
    return int(port)


def probe(path: str = "/health", *, bind: str | None = None, timeout: float = 3.0) -> bool:
    """Whether this node answers 200 on `path`."""
    port = probe_port(bind or os.environ.get("GATEWAY_BIND", "127.0.0.1:8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": PROBE_HOST_HEADER})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    """Entry point: the exit status for the container runtime."""
    return 0 if probe(argv[1] if len(argv) > 1 else "/health") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
