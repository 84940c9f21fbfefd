"""A journal line as ingest reads it back (gexsrv.journalline): the header decoded alone and the body cut out as it
was written; the strike rows the front counted, which ingest takes as they are; lines of an older gexsrv, without
that count, replayed as they were; and the same rows stored from either line as from the front's own record."""

import json

import msgspec
import pytest
from helpers import TS, envelope, majors, phoenix, snapshot

from gexsrv import decode, kinds
from gexsrv.decode import Rules, decode_gex
from gexsrv.journalline import cut_line, decode_line, encode_line, gex_header, uw_header
from gexsrv.position import Position
from gexsrv.store import Store
from gexsrv.uw.payloads import decode_uw

FRONT = Rules()  # a request's
ENGINE = Rules().replaying()  # ingest's (gexsrv.server.storage_parts)
RECEIVED_MS = TS * 1000 + 500
BAD_ROW = [7130.0, "bad", 1.0]  # a strike row the decoder skips, keeping the snapshot

# Lines as gexsrv wrote them before `rows`: one snapshot of two rows, one whose middle row is skipped.
OLD_LINES = [
    b'{"seq":41,"kind":"snapshot","path":"/gex","source":"live","ticker":"SPX","endpoint":"gex_zero",'
    b'"ts":1777492800000,"received":1777492800500,"dup":false,"arrived":1777492800600,"body":{"timestamp":1777492800,'
    b'"ticker":"SPX","spot":6800.5,"strikes":[[6795,1.5,0.5],[6800,2.5,0.25,[1,2]]]},"crc":2023456204}\n',
    b'{"seq":42,"kind":"snapshot","path":"/gex","source":"live","ticker":"SPX","endpoint":"gex_zero",'
    b'"ts":1777492801000,"received":1777492800500,"dup":false,"arrived":1777492800601,"body":{"timestamp":1777492801,'
    b'"ticker":"SPX","spot":6800.5,"strikes":[[6795,1.5,0.5],[6800,"bad",0.25],[6805,-2.0,0.75]]},"crc":818101853}\n',
]
SKIPPED_PROBLEM = {"field": "$.strikes[1][1]", "error": "strike row skipped: Expected `float`, got `str`"}


def encoded(body):
    return json.dumps(body).encode()


def journaled(seq, header, body, old=False):
    """The line the journal writes for header (as Intake.accept fills it in) and body; old: as gexsrv wrote it
    before `rows`."""
    header.dup, header.arrived = False, RECEIVED_MS + 100
    if old:
        header = {name: value for name, value in msgspec.structs.asdict(header).items() if name != "rows"}
    return b"".join(encode_line(header, body, seq))


def gex_line(seq, body, old=False):
    return journaled(seq, gex_header(decode_gex(body, FRONT, RECEIVED_MS), "/gex"), body, old)


def fields(line):
    return json.loads(line)


def test_a_snapshot_line_carries_the_strike_rows_the_front_stored():
    assert fields(gex_line(1, encoded(snapshot(n_strikes=7))))["rows"] == 7


def test_a_line_whose_strike_rows_were_skipped_carries_no_count():
    body = encoded(snapshot(n_strikes=3, strikes=[*snapshot(n_strikes=3)["strikes"], BAD_ROW]))
    assert fields(gex_line(1, body))["rows"] is None


def test_ingest_takes_the_lines_count_without_checking_the_strike_rows_again(monkeypatch):
    line = gex_line(1, encoded(snapshot(n_strikes=7)))

    def checked(*_):
        raise AssertionError("the strike rows were checked again")

    monkeypatch.setattr(decode, "uniform_rows", checked)
    monkeypatch.setattr(decode, "_strike_rows", checked)
    record = decode_line(line, ENGINE)
    assert (record.strike_rows, record.skipped, record.problems) == (7, (), [])


def test_a_line_whose_strike_rows_were_skipped_is_decoded_row_by_row_again():
    body = encoded(snapshot(n_strikes=3, strikes=[*snapshot(n_strikes=3)["strikes"], BAD_ROW]))
    front = decode_gex(body, FRONT, RECEIVED_MS)
    record = decode_line(gex_line(1, body), ENGINE)
    assert (record.strike_rows, record.skipped, record.problems) == (3, (3,), front.problems)
    assert front.problems == [{"field": "$.strikes[3][1]", "error": "strike row skipped: Expected `float`, got `str`"}]


def test_lines_of_an_older_gexsrv_replay_as_they_did():
    first, second = (decode_line(line, ENGINE) for line in OLD_LINES)
    assert (first.strike_rows, first.skipped, first.problems) == (2, (), [])
    assert (second.strike_rows, second.skipped, second.problems) == (2, (1,), [SKIPPED_PROBLEM])
    bodies = [cut_line(line)[1] for line in OLD_LINES]
    assert [first, second] == [decode_line(gex_line(seq, bytes(body)), ENGINE) for seq, body in enumerate(bodies)]


def test_the_body_is_cut_out_as_a_json_decoder_reads_it_whatever_the_header_holds():
    body = b' \t{"topic": "news",\n "payload": {"x": ",\\"body\\":"}}\r\n'
    record = decode_uw(body, FRONT, RECEIVED_MS, '","body":{', 'x,"body":1,')
    line = journaled(9, uw_header(record), body)
    head, cut = cut_line(line)
    assert (head.seq, head.kind, head.addr, head.ua) == (9, "uw", '","body":{', 'x,"body":1,')
    assert bytes(cut) == b'{"topic": "news",  "payload": {"x": ",\\"body\\":"}}'
    assert bytes(cut) == bytes(msgspec.json.decode(line, type=dict[str, msgspec.Raw])["body"])


def bodies_of_every_path():
    """(path, body) of records of each kind and shape; the /uw frame has two lines (gexsrv.uw.handler)."""
    rows = snapshot(n_strikes=300)["strikes"]
    return [
        ("/gex", encoded(snapshot(n_strikes=300))),
        ("/gex", encoded(snapshot(timestamp=TS + 1, strikes=[*rows[:2], BAD_ROW, *rows[2:]]))),
        ("/gex", encoded(snapshot(timestamp=TS + 2, strikes=[]))),
        ("/gex", encoded(envelope(snapshot(ticker="NDX", n_strikes=4), TS + 1, endpoint="classic/zero"))),
        ("/gex", encoded(majors("SPX", TS, 7138.55))),
        ("/uw", encoded(phoenix("gex", snapshot(ticker="SPY", n_strikes=6)))),
    ]


def front_records_and_lines(old):
    """The records the front holds (as a single process ingests them) and the lines it journals of them."""
    records, lines = [], []
    for path, body in bodies_of_every_path():
        if path == "/uw":
            frame = decode_uw(body, FRONT, RECEIVED_MS, "127.0.0.1", "test")
            items = [(frame, uw_header(frame)), (frame.gex, gex_header(frame.gex, "/uw"))]
        else:
            record = decode_gex(body, FRONT, RECEIVED_MS)
            items = [(record, gex_header(record, "/gex"))]
        for record, header in items:
            records.append(record.held())
            lines.append(journaled(len(lines) + 1, header, body, old))
    return records, lines


TABLES = ("gex_snapshots", "gex_strikes", "gex_majors", "gex_maxchange", "universal_webhooks")


def stored(folder, records):
    store = Store(str(folder), kinds.WRITERS)
    store.open()
    try:
        outcomes = store.write(records, store.prepare(records), Position(1, 0, len(records)))
        assert outcomes == [True] * len(records)
        return {table: store.read(f"SELECT * FROM {table} ORDER BY ALL") for table in TABLES}
    finally:
        store.close()


@pytest.mark.parametrize("old", [False, True], ids=["lines", "old lines"])
def test_the_rows_stored_from_the_lines_are_those_stored_from_the_front_records(tmp_path, old):
    records, lines = front_records_and_lines(old)
    assert ("rows" in fields(lines[0])) != old
    from_lines = stored(tmp_path / "lines", [decode_line(line, ENGINE) for line in lines])
    assert from_lines == stored(tmp_path / "front", records)
    assert [len(from_lines[table]) for table in TABLES] == [5, 300 + 300 + 4 + 6, 1, 0, 1]
