"""The original's DASHBOARD_URL hook: offer a history request to the dashboard first (2 s), else queue it here."""

import logging

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

log = logging.getLogger("gexsrv.history")

TIMEOUT = 2.0


async def to_dashboard(url, body):
    """The dashboard's 2xx response, or None when it did not take the request."""
    try:
        response = await AsyncHTTPClient().fetch(url, method="POST", body=body, connect_timeout=TIMEOUT,
                                                 request_timeout=TIMEOUT, headers={"Content-Type": "application/json"})
    except (HTTPClientError, OSError) as exc:
        log.warning("dashboard %s did not take the history request (%s); queueing it here", url, exc)
        return None
    return response
