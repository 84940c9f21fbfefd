"""Ticker, package and endpoint from a history file's name: `{YYYY-MM-DD}_{TICKER}_{package}_{category}.json[.gz]`."""

import posixpath
import re
import urllib.parse

from gexsrv.endpoints import CLASSIC, PACKAGES, normalize_endpoint

NAME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})_(?P<ticker>[A-Za-z0-9_.^-]+?)_(?P<package>" + "|".join(PACKAGES) + r")_"
    r"(?P<category>[A-Za-z0-9_]+?)(?:\.json)?(?:\.gz)?$"
)


def file_name(url_or_path):
    """The last path segment, without the query string (pre-signed URLs carry one)."""
    return posixpath.basename(urllib.parse.urlsplit(url_or_path).path)


def infer(url_or_path):
    """(ticker, endpoint) from the file name, each None when the name does not follow the pattern."""
    found = NAME.match(file_name(url_or_path))
    if not found:
        return None, None
    return found["ticker"].upper(), normalize_endpoint(found["category"], None, package=found["package"])


def package(url_or_path):
    """The gexbot package the file name gives (classic when it gives none): an endpoint given beside the file
    without a package is that package's, so a state file is never stored under classic's endpoint."""
    found = NAME.match(file_name(url_or_path))
    return found["package"] if found else CLASSIC


def trade_date(url_or_path):
    found = NAME.match(file_name(url_or_path))
    return found["date"] if found else None
