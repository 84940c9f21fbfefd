"""The original's DASHBOARD_URL hook: offer a history request to the dashboard first (2 s), else queue it here."""

import logging

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

log = logging.getLogger("gexsrv.history")

TIMEOUT = 2.0
INGEST_PATH = "/api/ingest/history"


def ingest_url(dashboard_url):
    return dashboard_url.rstrip("/") + INGEST_PATH


async def to_dashboard(dashboard_url, body):
    """True when the dashboard took the request (a 2xx within TIMEOUT); False when it is to be queued here."""
    url = ingest_url(dashboard_url)
    try:
        response = await AsyncHTTPClient().fetch(url, method="POST", body=body, connect_timeout=TIMEOUT,
                                                 request_timeout=TIMEOUT, follow_redirects=False,
                                                 headers={"Content-Type": "application/json"})
    except (HTTPClientError, OSError, ValueError) as exc:  # ValueError: a DASHBOARD_URL Tornado cannot fetch
        log.warning("dashboard %s did not take the history request (%s); queueing it here", url, exc)
        return False
    log.info("dashboard %s took the history request (HTTP %d)", url, response.code)
    return True
