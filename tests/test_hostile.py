"""Hostile input: no request gives a 5xx or a hang, what is invalid gets a 4xx naming the field, and what is refused
changes no stored data.

Schemathesis checks replies about stored data against docs/openapi.json (tests/test_fuzz.py fuzzes the running
server from it); hypothesis drives the decoders with arbitrary bytes and JSON (only PayloadError, the 400, may come
out of them)."""

import json

import hypothesis
import pytest
from hypothesis import strategies as st

from filesrv import FileServer
from gexsrv.decode import EARLIEST_MS, LATEST_MS, Rules, check_ticker, decode_gex, timestamp_ms
from gexsrv.history import command
from gexsrv.history.handlers import decode as decode_history_request
from gexsrv.handlers import ApiError
from gexsrv.payloads import Envelope, PayloadError
from gexsrv.records import Record
from gexsrv.uw.payloads import Ignored, UwRecord, decode_uw
from helpers import snapshot
from openapi_cases import FUZZ_ENV, FUZZ_FLAGS, REQUEST_TIMEOUT_S, SCHEMA

NOW_MS = 1_777_492_800_000


def test_replies_about_stored_data_are_as_described(start_server, tmp_path):
    """The fuzzing seldom stores anything: here the read routes answer with stored data (a snapshot from memory
    and one from DuckDB, a failed history job), each reply checked against the description."""
    with FileServer(tmp_path) as files:
        srv = start_server(None, *FUZZ_FLAGS, env={**FUZZ_ENV, "GEXBOT_API_KEY": ""})
        for timestamp in (1777492800, 1777492860):
            assert srv.post("/gex?ack=ingested", snapshot(timestamp=timestamp)).status == 202
        assert srv.post("/gex_history_url", {"url": f"{files.url}/status/404/2025-10-21_SPX_classic_gex_zero.json"}
                        ).status == 202
        reads = [("/api/snapshots", {"ticker": "SPX"}), ("/api/strikes", {"ticker": "SPX", "endpoint": "gex_zero"}),
                 ("/api/strikes", {"ticker": "spx", "endpoint": "zero", "timestamp": "1777492800"}),
                 ("/api/latest", {}), ("/api/latest", {"ticker": "SPX"}), ("/api/status", {}), ("/health", {}),
                 ("/gex_history_url", {}), ("/gex_history_url/days", {}), ("/integrity", {}), ("/metrics", {}),
                 ("/api/heatmap", {"ticker": "SPX", "endpoint": "gex_zero", "date": "2026-04-29"}),
                 ("/api/heatmap", {"ticker": "SPX", "endpoint": "gex_zero", "date": "2026-04-29", "format": "csv"}),
                 ("/api/days", {}), ("/day", {}),
                 ("/api/sql", {"q": "SELECT * FROM gex_strikes"}),
                 ("/api/sql", {"q": "SELECT * FROM gex_snapshots", "_format": "csv"}),
                 ("/api/sql", {"q": "FROM gex_majors", "_format": "parquet"})]
        for path, query in reads:
            case = SCHEMA[path]["GET"].Case(query=query)
            response = case.call(base_url=srv.url, timeout=REQUEST_TIMEOUT_S)
            assert response.status_code == 200, (path, response.text[:300])
            case.validate_response(response)
        job = SCHEMA["/gex_history_url/{id}"]["GET"].Case(path_parameters={"id": 1})
        job.call_and_validate(base_url=srv.url, timeout=REQUEST_TIMEOUT_S)


# --- the decoders, in process

FIELDS = [field for field in Envelope.__struct_encode_fields__]
UW_TOPICS = ["gex", "option_trades:SPY", "option_trades", "market_agg", "flow-alerts", "flow_alerts", "phx_reply",
             "phoenix"]
UW_FIELDS = ["symbol", "option_symbol", "strike", "expiration", "option_type", "executed_at", "price", "size",
             "premium", "volume", "date", "call_volume", "put_volume", "data", "ticker", "timestamp", "status",
             "response", "underlying_symbol", "open_interest"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["inf", "-inf", "nan", "1e400", "-1e400", "1e308", "0x10", "2026-02-30T25:00",
                              "9999-12-31T23:59:59-12:00", "0001-01-01", "-SPX", "../x", "SPX", "gex_zero",
                              "classic/zero/maxchange", "\ud800", "1777492800", str(2**64), "9" * 5000]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


def _encode(value):
    """JSON text of value; Python writes nan and inf (not JSON) and lone surrogates (not UTF-8), which is the
    point: bodies a careless client sends."""
    return json.dumps(value).encode("utf-8", "surrogatepass")


def near(fields, template, values=JSON):
    """template with some of these fields replaced by arbitrary values."""
    return st.dictionaries(st.sampled_from(fields), values, max_size=4).map(lambda changes: {**template, **changes})


GEX_VALUES = st.one_of(
    JSON,
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=8),
    near(FIELDS, snapshot()),
    near(FIELDS, snapshot(), SCALARS),
    near(FIELDS, snapshot()).map(lambda payload: {"ticker": "SPX", "endpoint": "gex_one", "data": payload}),
    near(FIELDS, snapshot()).map(lambda payload: {"payload": {"data": payload}, "kind": "snapshot"}),
)
GEX_BODIES = GEX_VALUES.map(_encode) | st.binary(max_size=200)
UW_PAYLOADS = st.one_of(JSON, GEX_VALUES, st.lists(st.dictionaries(st.sampled_from(UW_FIELDS), JSON, max_size=8),
                                                   max_size=3))
UW_TOPIC = st.sampled_from(UW_TOPICS) | st.text(max_size=8)
UW_BODIES = st.one_of(
    st.tuples(JSON, JSON, UW_TOPIC, st.sampled_from(["update", "phx_reply", "phx_join"]), UW_PAYLOADS).map(list),
    st.tuples(UW_TOPIC, UW_PAYLOADS).map(list),
    st.fixed_dictionaries({"topic": UW_TOPIC, "event": st.text(max_size=5), "payload": UW_PAYLOADS}),
    near(["topic", "payload", "event_type", "eventType"], {"topic": "gex", "payload": snapshot()}),
).map(_encode) | st.binary(max_size=200)


def decoded_or_refused(decode, body):
    """What decode makes of body, or None when it refused it with a PayloadError naming a JSON path."""
    try:
        return decode(body, Rules(), NOW_MS)
    except PayloadError as exc:
        assert exc.field.startswith("$") and exc.reason
        return None


DECODER_SETTINGS = hypothesis.settings(max_examples=400, deadline=None, database=None,
                                       suppress_health_check=[hypothesis.HealthCheck.too_slow])


@pytest.mark.slow
@DECODER_SETTINGS
@hypothesis.given(GEX_BODIES)
def test_the_gex_decoder_refuses_only_with_a_payload_error(body):
    record = decoded_or_refused(decode_gex, body)
    if record is not None:
        assert isinstance(record, Record)
        assert EARLIEST_MS <= record.timestamp_ms < LATEST_MS
        assert check_ticker(record.ticker) == record.ticker


@pytest.mark.slow
@DECODER_SETTINGS
@hypothesis.given(UW_BODIES)
def test_the_uw_decoder_refuses_only_with_a_payload_error(body):
    record = decoded_or_refused(decode_uw, body)
    assert record is None or isinstance(record, (Ignored, UwRecord))
    if isinstance(record, UwRecord):
        json.dumps(record.raw)  # the raw row is plain data DuckDB can take


@pytest.mark.slow
@DECODER_SETTINGS
@hypothesis.given(st.one_of(st.floats(), st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=40),
                            st.from_regex(r"\A[-+]?\d{0,400}\.?\d{0,5}([eE][-+]?\d{1,4})?\Z")))
def test_a_timestamp_is_in_range_or_a_payload_error(value):
    try:
        ms = timestamp_ms(value, "$.timestamp")
    except PayloadError as exc:
        assert exc.field == "$.timestamp"
        return
    assert isinstance(ms, int) and EARLIEST_MS <= ms < LATEST_MS


@pytest.mark.slow
@DECODER_SETTINGS
@hypothesis.given(GEX_BODIES | near(["url", "ticker", "date", "from", "to", "package", "category"],
                                    {"url": "http://127.0.0.1/x.json"}).map(_encode))
def test_the_history_request_decoder_refuses_only_with_a_400(body):
    try:
        decode_history_request(body)
    except ApiError as exc:
        assert exc.status_code == 400 and exc.field.startswith("$")


# --- what is refused stores nothing, on the running server

DEEP = 1000


def deep_bodies(depth=DEEP):
    """Bodies nested `depth` levels: bare, inside a payload's fields, and inside envelopes."""
    arrays, objects = "[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth
    inside = {"strikes": arrays, "max_priors": arrays, "data": objects, "timestamp": arrays, "ticker": objects}
    payload = json.dumps(snapshot())[1:-1]
    return [arrays, objects, *(f'{{{payload}, "{name}": {value}}}' for name, value in inside.items()),
            '{"data": ' * depth + json.dumps(snapshot()) + "}" * depth]


@pytest.mark.parametrize("path", ["/gex", "/uw", "/gex_history_url"])
def test_deep_nesting_is_a_400(shared_server, path):
    bodies = deep_bodies() + deep_bodies(100_000)[:2]
    if path == "/uw":
        bodies += [f'["gex", {body}]' for body in deep_bodies()] + [f'[1, 2, "gex", "x", {deep_bodies()[0]}]']
    for body in bodies:
        reply = shared_server.post(path, body.encode())
        assert reply.status == 400, (body[:60], reply.body[:300])
        assert reply.json()["field"].startswith("$"), reply.body[:300]
    assert journal_lines(shared_server) == 0  # nothing any case sent it was journaled


def bad_gex_bodies():
    """Bodies POST /gex must refuse whatever else they hold: a field no snapshot can have."""
    invalid = st.one_of(
        st.fixed_dictionaries({"ticker": st.sampled_from(["-SPX", "../x", "a/b", "", " ", "SP X", "..", ".x"])
                               | st.integers() | st.lists(st.none(), max_size=1)}),
        st.fixed_dictionaries({"timestamp": st.sampled_from(["inf", "nan", "1e400", "-1", "not a time",
                                                             "2026-02-30", "1e308", "99999999999999999999"])
                               | st.floats(max_value=1e8) | st.lists(st.none(), max_size=1)}),
        st.fixed_dictionaries({"endpoint": st.sampled_from(["a/b/c", "x" * 41, "classic/-/maxchange", "é"])}),
    )
    # not data or payload: an envelope's payload may carry a valid ticker and timestamp of its own
    kept = [field for field in FIELDS if field not in ("data", "payload")]
    bodies = st.tuples(near(kept, snapshot()), invalid).map(lambda parts: _encode({**parts[0], **parts[1]}))
    return bodies | st.sampled_from(deep_bodies()).map(str.encode) | st.binary(max_size=64).filter(
        lambda raw: not raw.strip().startswith(b"{"))


def stored(srv):
    with srv.db() as con:
        snapshots = con.execute("SELECT ticker, timestamp, endpoint, spot_price FROM gex_snapshots "
                                "ORDER BY timestamp").fetchall()
        strikes = con.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
        webhooks = con.execute("SELECT count(*) FROM universal_webhooks").fetchone()[0]
        quarantined = con.execute("SELECT count(*) FROM gexsrv_quarantine").fetchone()[0]
    return snapshots, strikes, webhooks, quarantined


def journal_lines(srv):
    folder = srv.data_dir / "journal"
    return sum(len(path.read_bytes().splitlines()) for path in folder.glob("*.ndjson"))


@pytest.mark.slow
def test_refused_requests_change_no_stored_data(start_server):
    srv = start_server()
    valid = [snapshot(timestamp=1777492800 + 60 * i, spot=7000.0 + i) for i in range(3)]
    for body in valid:
        reply = srv.post("/gex?ack=ingested", body)
        assert reply.status == 202, reply.body
    lines = journal_lines(srv)
    assert lines >= len(valid)

    @hypothesis.settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=[hypothesis.HealthCheck.too_slow])
    @hypothesis.given(bad_gex_bodies(), st.sampled_from(["", "?ack=ingested", "?ack=bogus"]))
    def refused(body, query):
        reply = srv.post("/gex" + query, body)
        assert 400 <= reply.status < 500, (body[:80], reply.body[:300])

    refused()
    for path, body in [("/gex?ack=x", json.dumps(snapshot(timestamp=1777500000))),
                       ("/gex?ack=journal&ack=ingested", json.dumps(snapshot(timestamp=1777500060))),
                       ("/uw?ack=x", '{"topic": "gex", "payload": %s}' % json.dumps(snapshot(timestamp=1777500120))),
                       ("/uw?ack=x", '[null, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]'),
                       ("/uw", '["gex", {"ticker": "-X", "timestamp": 1777500180}]'),
                       ("/uw", '{"topic": "option_trades", "payload": ' + "[" * DEEP + "]" * DEEP + "}")]:
        reply = srv.post(path, body.encode())
        assert reply.status == 400, (path, reply.body)
    assert journal_lines(srv) == lines  # nothing refused reached the journal
    assert srv.stop() == 0
    snapshots, strikes, webhooks, quarantined = stored(srv)
    assert snapshots == [("SPX", 1777492800000 + 60_000 * i, "gex_zero", 7000.0 + i) for i in range(3)]
    assert (strikes, webhooks, quarantined) == (3 * 5, 0, 0)


# --- HISTORY_DOWNLOAD_COMMAND: a value starting with `-` never becomes an option

def test_a_value_starting_with_a_dash_is_never_an_argument():
    """The last guard, for a job queued before the command was configured: the command is not even built."""
    values = {"id": 1, "url": "http://127.0.0.1/f.json", "ticker": "-rf", "endpoint": "gex_zero", "path": "/tmp/f"}
    with pytest.raises(command.CommandFailed, match="ticker '-rf' starts with '-'"):
        command.argv("fetch {url} {ticker} {path}", values)
    assert command.argv("fetch {ticker}", {**values, "ticker": "SPX"}) == ["fetch", "SPX"]


@pytest.mark.parametrize("name", ["-rf", "--output=/etc/passwd", "-"])
def test_the_ticker_rule_refuses_a_leading_dash(name):
    with pytest.raises(PayloadError, match="not starting with . or -"):
        check_ticker(name)


def test_history_requests_with_option_like_values_are_refused_and_nothing_runs(start_server, tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "fetch.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\n')
    script.chmod(0o755)
    with FileServer(tmp_path) as api:
        srv = start_server(None, "--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32",
                           "--gexbot-api-url", f"{api.url}/status/404", "--poll-interval", "3600",
                           env={"HISTORY_DOWNLOAD_COMMAND": f"{script} {{ticker}} {{endpoint}} {{url}}",
                                "GEXBOT_API_KEY": "test", "DASHBOARD_URL": ""})
        file_url = f"{api.url}/files/2025-10-21_SPX_classic_gex_zero.json"
        refused = [
            ({"url": file_url, "ticker": "-rf"}, "$.ticker"),
            ({"url": file_url, "ticker": "--output=/etc/passwd"}, "$.ticker"),
            ({"url": file_url, "endpoint": "-x"}, "$.endpoint"),
            ({"url": file_url, "feed": "--exec"}, "$.endpoint"),
            ({"url": f"{api.url}/files/2025-10-21_-RF_classic_gex_zero.json"}, "$.ticker"),  # from the file name
            ({"ticker": "-SPX", "package": "classic", "category": "gex_zero", "date": "2025-10-21"}, "$.ticker"),
        ]
        for body, field in refused:
            reply = srv.post("/gex_history_url", body)
            assert reply.status == 400, (body, reply.body)
            assert reply.json()["field"] == field, reply.body
        assert srv.get("/gex_history_url").json() == {"jobs": []}
        assert srv.get("/gex_history_url/days").json()["days"] == []
    assert not marker.exists()
