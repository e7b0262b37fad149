"""Readiness: ``start()`` returns when the server answers, not when the job called back.

The launcher calls back as soon as it picked a port and then ``exec``\\ s
``jupyterhub-singleuser``, which needs seconds more before it answers HTTP. JupyterHub
checks the server after ``start()`` returns with an exponential back-off (0.2 s growing
to 5 s, with random jitter), so it notices the server up to several seconds after it
started answering. :func:`wait_until_answering` checks the same URL JupyterHub checks
(``<server base URL>api``) every ``interval`` seconds instead; when it returns True the
hub's own first check succeeds at once.

Rules, the same as JupyterHub's check: any answer below 500 means the server is up
(404 and 302 included); 5xx, refused or reset connections and timeouts mean "not yet".
It never raises for the server's sake and never waits past ``timeout``: a server that
does not answer in time is left to JupyterHub's own check and its own error message.
Nothing here blocks the event loop (Tornado's asynchronous HTTP client, each request
bounded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

#: The path JupyterHub's own readiness check requests below the server's base URL.
CHECK_PATH = "api"


def check_url(host: str, port: int, base_url: str) -> str:
    """The URL JupyterHub's check requests for a server at ``host:port``."""
    if not base_url.endswith("/"):
        base_url += "/"
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{bracketed}:{port}{base_url}{CHECK_PATH}"


async def _status(url: str, request_timeout: float) -> int | None:
    """The HTTP status ``url`` answered with, None when it did not answer."""
    request = HTTPRequest(url, method="GET", follow_redirects=False,
                          connect_timeout=request_timeout, request_timeout=request_timeout)
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (OSError, asyncio.TimeoutError, HTTPClientError):
        return None
    return response.code


async def wait_until_answering(
    url: str,
    timeout: float,
    interval: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Check ``url`` every ``interval`` s until it answers below 500 (True), ``timeout``
    s pass or ``stop()`` is true (False)."""
    deadline = clock() + max(0.0, timeout)
    request_timeout = max(0.5, min(5.0, timeout))
    while True:
        code = await _status(url, min(request_timeout, max(0.1, deadline - clock())))
        if code is not None and code < 500:
            return True
        if stop() or clock() + interval >= deadline:
            return False
        await asyncio.sleep(interval)
