"""Which URLs a history download may fetch: http(s) only, hosts on the allow-list, global addresses only.

The address check sits in the resolver the HTTP client connects through, so it holds for every redirect hop and
for the address actually dialled (a name that resolves differently on a second lookup cannot slip past).
"""

import fnmatch
import ipaddress
import urllib.parse

from tornado.netutil import DefaultLoopResolver, Resolver


class Refused(Exception):
    """The URL may not be fetched; permanent, never retried."""


def redact(url):
    """The URL without its query string, which on a pre-signed URL is a credential: for logs and listings."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="…" if parts.query else "", fragment=""))


def listed(job):
    """A job as replies show it (GET /gex_history_url, /api/status): without its URL's query string."""
    return {**job, "url": redact(job["url"])}


def split_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


class Policy:
    def __init__(self, allowed_hosts, allowed_networks):
        self.hosts = [h.lower() for h in split_list(allowed_hosts)]
        self.networks = [ipaddress.ip_network(n, strict=False) for n in split_list(allowed_networks)]

    @classmethod
    def from_settings(cls, conf):
        return cls(conf.history_allowed_hosts, conf.history_allowed_networks)

    def check_url(self, url):
        """Raise Refused unless the URL's scheme and host are allowed."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused(f"only http and https URLs are fetched, not {parts.scheme or 'a relative URL'!r}")
        host = (parts.hostname or "").lower()
        if not host:
            raise Refused("the URL has no host")
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.hosts):
            raise Refused(f"host {host!r} is not on the history_allowed_hosts list")

    def check_address(self, host, address):
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_global or any(ip in network for network in self.networks):
            return
        raise Refused(f"host {host!r} resolves to {ip}, which is not a global address "
                      "(add its network to history_allowed_networks to allow it)")


class CheckedResolver(Resolver):
    """Resolves like the default resolver, then refuses the connection if any address is not allowed."""

    def initialize(self, policy):
        self.policy = policy
        self.inner = DefaultLoopResolver()

    async def resolve(self, host, port, family=0):
        addresses = await self.inner.resolve(host, port, family)
        for _family, sockaddr in addresses:
            self.policy.check_address(host, sockaddr[0])
        return addresses
