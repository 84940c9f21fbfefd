"""Operator notifications: always a log line; also a POST to the alert webhook when one is configured.

The body carries the message as both `content` (Discord) and `text` (Slack), so either kind of incoming
webhook accepts it."""

import logging

import msgspec
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

log = logging.getLogger("gexsrv.alerts")


async def alert(webhook_url, message):
    log.error("ALERT %s", message)
    if not webhook_url:
        return
    body = msgspec.json.encode({"content": message[:1900], "text": message})
    try:
        await AsyncHTTPClient().fetch(webhook_url, method="POST", body=body, request_timeout=10,
                                      headers={"Content-Type": "application/json"})
    except (HTTPClientError, OSError) as exc:
        log.error("alert webhook %s did not take the alert: %s", webhook_url, exc)
