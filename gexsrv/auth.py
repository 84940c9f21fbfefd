"""Optional shared-secret authentication (README, Authentication); off while both secrets are empty.

- bearer token: `Authorization: Bearer <auth_token>`
- signature: `X-Signature-Timestamp: <unix seconds>` and `X-Signature: sha256=<hex>`, the HMAC-SHA256 under
  auth_hmac_secret of `<timestamp>\\n<METHOD>\\n<request target>\\n<body>` (the target is the path and query as
  sent; a GET's body is empty). Bound to the method, route and moment, a captured request cannot be sent to
  another route, or again: a timestamp further than auth_signature_window_s from the server's clock is refused,
  and so is a signature already used within the window.
The old form (no timestamp; a write's body or a read's target alone) is replayable, and accepted only with
auth_legacy_signatures. When both secrets are set, a request needs both. Comparisons run in constant time.
"""

import hashlib
import heapq
import hmac
import re

TIMESTAMP = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
HOW = "X-Signature: sha256=<hex HMAC-SHA256 of timestamp, method, target and body>"


def token_problem(settings, authorization):
    """What is wrong with the Authorization header, or None if it passes (or no token is configured)."""
    if not settings.auth_token:
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return "missing bearer token (Authorization: Bearer <token>)"
    if not hmac.compare_digest(given.strip().encode("latin-1"), settings.auth_token.encode()):
        return "bad bearer token"
    return None


def signed_message(timestamp, method, target, body):
    """What a client signs: the timestamp as it sends it, the method, the request target, the body."""
    return b"\n".join([timestamp.encode(), method.encode(), target.encode(), body])


def legacy_message(method, target, body):
    return body if method != "GET" else target.encode()


class Signatures:
    """Checks X-Signature, and remembers the signatures used within the window so that none is used twice."""

    def __init__(self, secret, window_s, legacy):
        self.secret = secret.encode()
        self.window_s = window_s
        self.legacy = legacy
        self.used = {}  # signature -> when it stops mattering (its timestamp leaves the window)
        self.expiry = []  # heap of (that moment, signature)

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.auth_hmac_secret, settings.auth_signature_window_s, settings.auth_legacy_signatures)

    def check(self, method, target, body, headers, now):
        """(what is wrong or None, the signature claimed): a claimed signature is refused to any other request
        until release(); None when no secret is set."""
        if not self.secret:
            return None, None
        algorithm, _, given = (headers.get("X-Signature") or "").partition("=")
        if algorithm.strip().lower() != "sha256" or not given:
            return f"missing signature ({HOW}; README, Authentication)", None
        timestamp = headers.get("X-Signature-Timestamp")
        if timestamp is None:
            if not self.legacy:
                return ("signature without X-Signature-Timestamp: the old form, which can be replayed, is refused "
                        "(sign the timestamp, method, target and body, or set auth_legacy_signatures)"), None
            return self._verify(legacy_message(method, target, body), given), None
        problem = self._timely(timestamp, now) or self._verify(signed_message(timestamp, method, target, body), given)
        if problem:
            return problem, None
        return self._claim(given.strip().lower(), float(timestamp) + self.window_s, now)

    def _timely(self, timestamp, now):
        if not TIMESTAMP.match(timestamp):
            return f"X-Signature-Timestamp must be Unix seconds, got {timestamp[:30]!r}"
        off = float(timestamp) - now
        if abs(off) > self.window_s:
            return (f"stale signature: X-Signature-Timestamp is {off:+.0f} s from the server's clock, outside "
                    f"auth_signature_window_s ({self.window_s:g} s)")
        return None

    def _verify(self, message, given):
        expected = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.strip().lower().encode("latin-1"), expected.encode()):
            return "bad signature"
        return None

    def _claim(self, signature, until, now):
        while self.expiry and self.expiry[0][0] < now:
            _, old = heapq.heappop(self.expiry)
            self.used.pop(old, None)
        if signature in self.used:
            return "signature already used: sign each request anew (a new X-Signature-Timestamp)", None
        self.used[signature] = until
        heapq.heappush(self.expiry, (until, signature))
        return None, signature

    def release(self, signature):
        """A request refused or failed may be sent again as it was: its signature is free again."""
        self.used.pop(signature, None)
