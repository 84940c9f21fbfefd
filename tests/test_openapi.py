"""docs/openapi.json: the same file the server serves, in step with the routes and the decoders (test_hostile.py
fuzzes the running server from it)."""

import json
import re
import types

import msgspec

from gexsrv import __version__, settings
from gexsrv.app import make_app
from gexsrv.history.handlers import HistoryRequest
from gexsrv.payloads import Envelope
from gexsrv.validate.options import Options
from helpers import REPO

DOCS = REPO / "docs" / "openapi.json"
PACKAGED = REPO / "gexsrv" / "openapi.json"
DESCRIPTION = json.loads(DOCS.read_text())
SCHEMAS = DESCRIPTION["components"]["schemas"]


def test_the_packaged_copy_is_the_docs_file():
    assert PACKAGED.read_bytes() == DOCS.read_bytes()


def test_the_server_serves_it(server):
    reply = server.get("/openapi.json")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == DOCS.read_bytes()


class Unused:
    """Stands for the server's running pieces (and any attribute of theirs): building the routes only hands them
    to the handlers."""

    def __getattr__(self, name):
        return self


def _route_paths(tmp_path):
    """Every route of make_app as an OpenAPI path template ({} for each captured group)."""
    conf = settings.load(types.SimpleNamespace(config=None), environ={}, cwd=tmp_path)
    app = make_app(conf, Unused())
    paths = set()
    for rule in app.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        pattern = pattern.removesuffix("/?").replace("\\.", ".").replace("()", "")  # "/()": the page at /
        paths.add(re.sub(r"\([^)]*\)", "{}", pattern))
    return paths


def test_every_route_is_described_and_nothing_else(tmp_path):
    described = {re.sub(r"\{[^}]+\}", "{}", path) for path in DESCRIPTION["paths"]}
    assert described == _route_paths(tmp_path)


def test_the_version_is_the_server_version():
    assert DESCRIPTION["info"]["version"] == __version__


def _fields(struct):
    return {field.encode_name for field in msgspec.inspect.type_info(struct).fields}


def test_bodies_name_every_field_the_decoders_read():
    assert set(SCHEMAS["GexBody"]["properties"]) == _fields(Envelope)
    assert set(SCHEMAS["HistoryRequest"]["properties"]) == _fields(HistoryRequest)
    integrity = DESCRIPTION["paths"]["/integrity"]["get"]["parameters"]
    assert {param["name"] for param in integrity} == _fields(Options)


def test_integrity_limits_are_the_options_limits():
    """The description's bounds of each /integrity number are the ones the server enforces."""
    params = {p["name"]: p["schema"] for p in DESCRIPTION["paths"]["/integrity"]["get"]["parameters"]}
    for field in msgspec.inspect.type_info(Options).fields:
        if isinstance(field.type, (msgspec.inspect.FloatType, msgspec.inspect.IntType)):
            limits = {"minimum": field.type.ge, "exclusiveMinimum": field.type.gt, "maximum": field.type.le}
            assert {k: v for k, v in limits.items() if v is not None} == {
                k: v for k, v in params[field.name].items() if k in limits}, field.name
