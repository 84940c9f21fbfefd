"""The one table of endpoint names: every form a client gives gexbot's "category", and the endpoint it is stored under.

Forms seen: `gex_zero`; the short `zero`; gexbot API paths `classic/zero`, `/classic/zero/majors`,
`state/gex_one/maxchange`, also as gexbot's URLs carry them, after the API version and the ticker
(`/v2/SPX/classic/zero`) or as a whole URL; and `gex_maxchange`, `maxchange` or `majors` alone, which name the kind
of payload but no category. A path's last part `majors` or `maxchange` names the kind; what comes before the
package is not read (the payload names its ticker). Packages map alike: `state/one` is `gex_one` as `classic/one`
is; other categories (`state/gamma_zero`) are stored under their own name.
"""

import re
import urllib.parse

from gexsrv.payloads import PayloadError

PACKAGES = ("classic", "state", "orderflow")
CATEGORIES = {"zero": "gex_zero", "one": "gex_one", "full": "gex_full"}  # the short names of gexbot's categories
KIND_NAMES = {"maxchange": "maxchange", "gex_maxchange": "maxchange", "majors": "majors"}
BEFORE_PACKAGE = 2  # at most the API version and the ticker: `v2/SPX/classic/zero`
ENDPOINT = re.compile(r"^[a-z0-9_]{1,40}$")
EXAMPLES = "gex_zero, zero, classic/zero or /SPX/classic/zero/majors"


def _parts(name):
    text = name.strip()
    if "://" in text:  # a whole URL: its path (its query string may hold an API key)
        text = urllib.parse.urlsplit(text).path
    return [part for part in text.lower().split("/") if part]


def endpoint_parts(name, field="$.endpoint"):
    """(endpoint, kind the name gives or None) of an endpoint as a client writes it; the endpoint is None when the
    name gives only the kind. PayloadError when it is none of the forms."""
    parts = _parts(name)
    # the last package with something after it, so that a ticker spelled like a package is passed over
    package = max((i for i, part in enumerate(parts[:-1]) if part in PACKAGES), default=None)
    if package is not None:
        if package > BEFORE_PACKAGE:
            raise PayloadError(field, f"expected an endpoint such as {EXAMPLES}, got {name[:60]!r}")
        parts = parts[package + 1:]
    kind = KIND_NAMES.get(parts[-1]) if parts else None
    if kind:
        parts = parts[:-1]
    if len(parts) > 1:
        raise PayloadError(field, f"expected an endpoint such as {EXAMPLES}, got {name[:60]!r}")
    endpoint = CATEGORIES.get(parts[0], parts[0]) if parts else None
    if endpoint is not None and not ENDPOINT.match(endpoint):
        raise PayloadError(field, f"an endpoint is 1 to 40 letters, digits or _, got {name[:40]!r}")
    return endpoint, kind


def normalize_endpoint(name, default, field="$.endpoint"):
    """The endpoint stored for a name (default when it names none)."""
    endpoint = endpoint_parts(name, field)[0] if name else None
    return endpoint or default
