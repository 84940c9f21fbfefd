"""Which web pages and which Host names the server answers: the defence against cross-origin writes and DNS
rebinding (README, Security).

A browser names the page behind a request in `Origin`. Any page may send a "simple" request (a POST of text/plain,
no preflight) to any address, a server on the LAN or on 127.0.0.1 included; a request from a page not allowed is
refused here before anything is read or stored, and a reply names only an allowed origin in
Access-Control-Allow-Origin, so no other page can read it. Requests without `Origin` (curl, pollers, scripts)
come from no web page and are not concerned.

DNS rebinding points a name the attacker owns at the server's address: the browser then takes the server for the
attacker's own origin, and its requests carry the attacker's name in `Host`. Names not listed are refused. An IP
address cannot be rebound, so a `Host` that is one is always accepted.

Both lists are comma-separated, case-insensitive, and take `*` as a wildcard: `https://*.gexbot.com`,
`chrome-extension://*`, or `*` alone (anything: the protection off).
"""

import fnmatch
import functools
import ipaddress
import re

ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")  # scheme://host[:port], as browsers send it
HOST = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::\d{1,5})?$")


def patterns(text):
    return [item.strip().lower() for item in text.split(",") if item.strip()]


def host_name(host):
    """The name or address of a Host header, without its port; None when it is not one."""
    found = HOST.match(host.strip().lower())
    if not found:
        return None
    return found["v6"] or found["name"].rstrip(".")


def is_address(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Gate:
    def __init__(self, allowed_origins, allowed_hosts, bind_host):
        self.origins = patterns(allowed_origins)
        self.hosts = patterns(allowed_hosts) + patterns(bind_host)
        # Every request asks about its Host, nearly always one of a few names: judged once each (a name that is
        # not an address costs ipaddress a raised ValueError). Bounded, since any client can send any name.
        self.host_allowed = functools.lru_cache(maxsize=256)(self._host_allowed)

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.allowed_origins, settings.allowed_hosts, settings.host)

    def _host_allowed(self, host):
        name = host_name(host)
        return name is not None and (is_address(name) or any(fnmatch.fnmatchcase(name, p) for p in self.hosts))

    def origin_allowed(self, origin, own):
        """Whether a page of `origin` may use the server; `own` is the server's origin as this request names it
        (its own status page)."""
        origin = origin.strip().lower()
        if origin == own.lower():
            return True
        return bool(ORIGIN.match(origin)) and any(fnmatch.fnmatchcase(origin, p) for p in self.origins)

    def refusal(self, request):
        """(what is wrong, the setting that would allow it) for a request refused; None for one served."""
        if not self.host_allowed(request.host):
            return (f"Host {request.host[:80]!r} is not allowed: add its name to the allowed_hosts setting "
                    "(a defence against DNS rebinding)", "allowed_hosts")
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, f"{request.protocol}://{request.host}"):
            return (f"Origin {origin[:80]!r} is not allowed: add it to the allowed_origins setting to let pages "
                    "of that site use this server", "allowed_origins")
        return None
