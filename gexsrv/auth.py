"""Optional shared-secret authentication of the ingest endpoints (/gex, /uw); off while both secrets are empty.

- bearer token: `Authorization: Bearer <auth_token>`
- HMAC: `X-Signature: sha256=<hex of HMAC-SHA256(auth_hmac_secret, raw body)>`
When both are set, a request needs both. Comparisons run in constant time (hmac.compare_digest).
"""

import hashlib
import hmac


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


def signature_problem(settings, body, signature):
    """What is wrong with the X-Signature header for this body, or None if it passes (or no secret is set)."""
    if not settings.auth_hmac_secret:
        return None
    algorithm, _, given = (signature or "").partition("=")
    if algorithm.strip().lower() != "sha256" or not given:
        return "missing signature (X-Signature: sha256=<hex HMAC-SHA256 of the body>)"
    expected = hmac.new(settings.auth_hmac_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().lower().encode("latin-1"), expected.encode()):
        return "bad signature"
    return None
