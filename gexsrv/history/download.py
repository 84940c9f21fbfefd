"""The built-in downloader: Tornado's async client, streaming into a staging Sink, redirects followed by hand
(each hop checked against the Policy), retries with exponential backoff on network errors and 5xx only.
A host with a mirror (history_fallback_hosts, e.g. hist.gex.bot=hist.gexbot.com) is backed by it: when a
download from the host fails, the same path and query are tried from the mirror in the same attempt.

The body arrives on the event loop; the Sink's work (opening it, inflating, hashing, writing, the fsync) runs on a
thread (staging.Feeder), and the next piece is read only once the last is handed over (Tornado awaits a coroutine
streaming_callback), so a large or slow-to-write file neither stalls the loop nor piles up in memory."""

import asyncio
import logging
import urllib.parse

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from gexsrv.history.staging import BadContent, Feeder, TooLarge
from gexsrv.history.urls import CheckedResolver, Refused, redact, split_list

log = logging.getLogger("gexsrv.history")

MAX_HOPS = 5
NETWORK_ERROR = 599  # Tornado's code for "no HTTP response"


class DownloadFailed(Exception):
    """The file could not be fetched; `retry` says whether another attempt may succeed."""

    def __init__(self, reason, retry):
        super().__init__(reason)
        self.retry = retry


PERMANENT = (Refused, TooLarge, BadContent)
CONTENT = (TooLarge, BadContent)  # the file itself is wrong: every attempt, from every host, gets the same bytes


def mirror_of(url, fallback_hosts):
    """url with its host replaced by the host's mirror (`host=mirror` pairs, host[:port] as the URL has it), or
    None when it has none."""
    parts = urllib.parse.urlsplit(url)
    mirrors = dict(pair.lower().split("=", 1) for pair in split_list(fallback_hosts))
    mirror = mirrors.get(parts.netloc.lower())
    return urllib.parse.urlunsplit(parts._replace(netloc=mirror)) if mirror else None


async def fetch(url, new_sink, policy, conf, on_attempt):
    """Download url into a fresh Sink per try (new_sink() is called on a thread); return the finished Sink (its
    sha256 as `.sha256`)."""
    mirror = mirror_of(url, conf.history_fallback_hosts)
    urls = [url, mirror] if mirror else [url]
    client = SimpleAsyncHTTPClient(force_instance=True, resolver=CheckedResolver(policy=policy),
                                   max_body_size=conf.history_max_bytes + (1 << 20))
    try:
        for attempt in range(1, conf.history_attempts + 1):
            await on_attempt(attempt)
            failures = []
            for each in urls:
                try:
                    return await _try(client, each, await asyncio.to_thread(new_sink), policy, conf)
                except DownloadFailed as exc:
                    failures.append(exc)
            failed = _together(failures, urls)
            if not failed.retry or attempt == conf.history_attempts:
                raise failed
            delay = conf.history_backoff_seconds * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); attempt %d in %.1f s", redact(url), failed, attempt + 1, delay)
            await asyncio.sleep(delay)
    except CONTENT as exc:
        raise DownloadFailed(str(exc), retry=False) from None
    finally:
        client.close()


async def _try(client, url, sink, policy, conf):
    """One download of url into sink: a wrong file raises TooLarge or BadContent, any other failure
    DownloadFailed."""
    try:
        feeder = Feeder(sink)
        await _follow(client, url, feeder, policy, conf)
        sink.sha256 = await feeder.finish()
        return sink
    except Refused as exc:
        sink.discard()
        raise DownloadFailed(str(exc), retry=False) from None
    except BaseException:
        sink.discard()
        raise


def _together(failures, urls):
    """The attempt's failure: the URL's, and its mirror's when that was tried too (retried if either may pass)."""
    if len(failures) == 1:
        return failures[0]
    first, second = failures
    return DownloadFailed(f"{first}; from {urllib.parse.urlsplit(urls[1]).hostname}: {second}",
                          retry=first.retry or second.retry)


async def _follow(client, url, feeder, policy, conf):
    for _hop in range(MAX_HOPS + 1):
        policy.check_url(url)
        status = {}
        try:
            response = await client.fetch(HTTPRequest(
                url, follow_redirects=False, connect_timeout=conf.history_connect_timeout,
                request_timeout=conf.history_request_timeout,
                header_callback=lambda line: _status_line(line, status),
                streaming_callback=lambda chunk: _body(chunk, status, feeder),
            ), raise_error=False)
        except HTTPClientError as exc:  # raise_error=False still raises when no response came (code 599)
            raise DownloadFailed(f"network error: {exc}", retry=exc.code == NETWORK_ERROR) from None
        except OSError as exc:
            raise DownloadFailed(f"network error: {exc}", retry=True) from None
        if response.code in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            if not location:
                raise DownloadFailed(f"HTTP {response.code} without a Location", retry=False)
            url = urllib.parse.urljoin(url, location)
            continue
        if "error" in status:
            raise status["error"]
        _check(response)
        return
    raise DownloadFailed(f"more than {MAX_HOPS} redirects", retry=False)


def _status_line(line, status):
    if line.startswith("HTTP/"):
        status["code"] = int(line.split()[1])


async def _body(chunk, status, feeder):
    """Only a 200's body is the file; a redirect's or an error page's is not.

    An exception raised here would stall Tornado's fetch, so the first one is kept and raised after it."""
    if status.get("code") != 200 or "error" in status:
        return
    try:
        await feeder.feed(chunk)
    except (*PERMANENT, OSError) as exc:  # OSError: the staging disk (full), not the network
        status["error"] = exc


def _check(response):
    if isinstance(response.error, PERMANENT):
        raise response.error
    if response.code == 200:
        return
    if response.code == NETWORK_ERROR:
        raise DownloadFailed(f"network error: {response.error}", retry=True)
    reason = f"HTTP {response.code} {response.reason or ''}".strip()
    raise DownloadFailed(reason, retry=response.code >= 500)
