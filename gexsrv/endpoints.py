"""The one table of endpoint names: every form a client gives gexbot's "category", and the endpoint it is stored under.

Forms seen: `gex_zero`; the short `zero`; gexbot API paths `classic/zero`, `/classic/zero/majors`,
`state/gex_one/maxchange`, also as gexbot's URLs carry them, after the API version and the ticker
(`/v2/SPX/classic/zero`) or as a whole URL; and `gex_maxchange`, `maxchange` or `majors` alone, which name the kind
of payload but no category. A path's last part `majors` or `maxchange` names the kind; what comes before the
package is not read (the payload names its ticker).

Packages are different computations of the same categories, so each is stored apart. The `classic` package
keeps the names the original's clients and the legacy rows use: `classic/zero` is `gex_zero`, and a name without
a package is classic's (`zero`, `gex_one`). Any other package's endpoint is `<package>_<category>`, the category
named as classic's would be: `state/zero` and `state/gex_zero` are `state_gex_zero`, `state/gamma_zero` is
`state_gamma_zero`, `orderflow/orderflow` is `orderflow_orderflow`. A name that already carries its package's
prefix is a stored name and stays as it is, so a stored name read again (from a query, a file name) is itself.
"""

import re
import urllib.parse

from gexsrv.payloads import PayloadError

PACKAGES = ("classic", "state", "orderflow")
CLASSIC = "classic"  # the package whose endpoints carry no prefix
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


def stored_endpoint(package, category):
    """The endpoint a package's category is stored under (module docstring)."""
    endpoint = CATEGORIES.get(category, category)
    if package == CLASSIC or endpoint.startswith(package + "_"):
        return endpoint
    return f"{package}_{endpoint}"


def endpoint_parts(name, field="$.endpoint", package=CLASSIC):
    """(endpoint, kind the name gives or None) of an endpoint as a client writes it, in `package` when the name
    names none; the endpoint is None when the name gives only the kind. PayloadError when it is none of the
    forms."""
    parts = _parts(name)
    # the last package with something after it, so that a ticker spelled like a package is passed over
    found = max((i for i, part in enumerate(parts[:-1]) if part in PACKAGES), default=None)
    if found is not None:
        if found > BEFORE_PACKAGE:
            raise PayloadError(field, f"expected an endpoint such as {EXAMPLES}, got {name[:60]!r}")
        package, parts = parts[found], parts[found + 1:]
    kind = KIND_NAMES.get(parts[-1]) if parts else None
    if kind:
        parts = parts[:-1]
    if len(parts) > 1:
        raise PayloadError(field, f"expected an endpoint such as {EXAMPLES}, got {name[:60]!r}")
    endpoint = stored_endpoint(package, parts[0]) if parts else None
    if endpoint is not None and not ENDPOINT.match(endpoint):
        raise PayloadError(field, f"an endpoint is 1 to 40 letters, digits or _, got {name[:40]!r}")
    return endpoint, kind


def normalize_endpoint(name, default, field="$.endpoint", package=CLASSIC):
    """The endpoint stored for a name (default when it names none), in `package` when the name names none."""
    endpoint = endpoint_parts(name, field, package)[0] if name else None
    return endpoint or default
