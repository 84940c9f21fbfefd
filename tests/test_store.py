"""Store.write on a real DuckDB file: one transaction per batch with its journal position, duplicates found by the
unique index, and a record the database refuses on its own refused alone."""

import json

import duckdb
import msgspec
import pytest

from gexsrv import kinds, store as storage
from gexsrv.decode import Rules, decode_gex
from gexsrv.history import importer
from gexsrv.store import RecordRefused, StorageError, Store
from gexsrv.uw.payloads import decode_uw
from helpers import TS, phoenix, snapshot


def record(ts, ticker="SPX", spot=7138.55):
    """A decoded snapshot as ingest holds it: with its body, from which the strike rows are read."""
    body = json.dumps(snapshot(ticker=ticker, timestamp=ts, n_strikes=2, spot=spot)).encode()
    return decode_gex(body, Rules(), 0).held()


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "data"), kinds.WRITERS)
    store.open()
    yield store
    store.close()


def timestamps(store):
    return [ts for (ts,) in store.read("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1")]


def test_a_batch_and_its_journal_position_commit_together(store):
    batch = [record(TS + i) for i in range(50)]
    assert store.write(batch, store.prepare(batch), (1, 4096, 50)) == [True] * 50
    assert store.journal_position() == (1, 4096, 50)
    assert store.read("SELECT count(*) FROM gex_strikes")[0][0] == 100


def test_duplicates_in_a_batch_and_across_batches_are_stored_once(store):
    first = [record(TS), record(TS + 1)]
    again = [record(TS + 1), record(TS + 2), record(TS + 2)]
    assert store.write(first, None, (1, 10, 2)) == [True, True]
    assert store.write(again, None, (1, 20, 5)) == [False, True, False]
    assert timestamps(store) == [TS, TS + 1, TS + 2]
    assert store.read("SELECT count(*) FROM gex_strikes")[0][0] == 6
    assert store.journal_position() == (1, 20, 5)


def test_a_record_the_database_refuses_fails_alone_and_its_batch_mates_are_stored(store):
    """Decoding checks values against their columns; should one slip through anyway, it must not take its batch
    down with it: the batch is retried record by record, and the caller keeps the refused one (quarantine)."""
    guilty = record(TS + 5)
    guilty = msgspec.structs.replace(guilty, row=msgspec.structs.replace(guilty.row, min_dte=2**31))
    batch = [record(TS + i) for i in range(5)] + [guilty] + [record(TS + 10 + i) for i in range(5)]
    outcomes = store.write(batch, store.prepare(batch), (1, 100, 11))
    assert outcomes[:5] == [True] * 5 and outcomes[6:] == [True] * 5
    assert isinstance(outcomes[5], RecordRefused) and "2147483648" in str(outcomes[5])
    assert store.state == "writable"
    assert timestamps(store) == [TS + i for i in range(5)] + [TS + 10 + i for i in range(5)]
    assert store.journal_position() == (0, 0, 0)  # left to the caller, which quarantines the refused record
    store.advance((1, 100, 11), [(6, "{...}", str(outcomes[5]))])
    assert store.journal_position() == (1, 100, 11)
    assert store.read("SELECT seq, line FROM gexsrv_quarantine") == [(6, "{...}")]


class FullDisk:
    """The store's real connection, whose commits numbered in `failing` fail as on a full disk (the write-ahead
    log cannot grow): the fault injected at the storage boundary, so that it hits one chosen commit."""

    def __init__(self, con, failing):
        self.con, self.failing, self.commits = con, failing, 0

    def __getattr__(self, name):
        return getattr(self.con, name)

    def commit(self):
        self.commits += 1
        if self.commits in self.failing:
            raise duckdb.IOException("Could not write file \"gex_data.db.wal\": No space left on device")
        self.con.commit()


def test_a_commit_that_fails_for_the_disk_refuses_no_record(store):
    """The batch's commit fails, the first record alone commits, the second's commit fails: the disk is at fault,
    not the record, which must not be refused (quarantined) while the database takes others."""
    batch = [record(TS + i) for i in range(3)]
    with pytest.raises(duckdb.IOException):
        storage.write(FullDisk(store.con, failing={1, 3}), batch, kinds.WRITERS)
    assert timestamps(store) == [TS]  # committed alone before the failure
    assert store.write(batch, None, (1, 30, 3)) == [False, True, True]  # the retry finds it stored
    assert timestamps(store) == [TS, TS + 1, TS + 2]


def test_a_database_that_takes_nothing_raises_storage_error_and_keeps_the_position(store):
    store.write([record(TS)], None, (1, 10, 1))
    store.con.execute("CHECKPOINT")
    store.con.close()  # a connection that fails every statement
    batch = [record(TS + 1), record(TS + 2)]
    with pytest.raises(StorageError):
        store.write(batch, None, (1, 30, 3))
    assert store.state == "failing"


def test_a_writer_whose_arrow_tables_fail_inside_the_transaction_leaves_none_open(store):
    """The /uw writer builds its Arrow tables inside the transaction; should one fail there (pyarrow refuses an int
    that no double holds exactly, in a DOUBLE column), that record alone is refused and the transaction is ended:
    left open, every later begin() failed and nothing was ingested any more."""
    def frame(trade_id, quantity):
        body = phoenix("option_trades_super_algo", {"data": {"id": trade_id, "option_chain_id": "ARM260116C00118000",
                                                            "executed_at": 1761057001123, "price": "1.25", "size": 3}})
        uw = decode_uw(json.dumps(body).encode(), Rules(), 0)
        uw.rows[0]["quantity"] = quantity
        return uw.held()

    outcomes = store.write([frame("bad", 2**53 + 1), frame("good", 3.0)], None, (1, 10, 2))
    assert isinstance(outcomes[0], RecordRefused), outcomes
    assert "9007199254740993" in str(outcomes[0]) and outcomes[1] is True
    assert store.write([record(TS)], None, (1, 20, 3)) == [True]
    assert store.read("SELECT trade_id, quantity FROM option_trades_events") == [("good", 3.0)]
    assert timestamps(store) == [TS]


class Interloper:
    """A connection of the store's database on which another writer (a history import on its cursor, or live
    ingest) commits `theirs` at a chosen point of this connection's transaction: just before its COMMIT, or once
    its careful retry has begun (its snapshot taken: the long INSERT of a large batch is under way). The overlap
    of two real transactions, made to happen every time."""

    def __init__(self, con, theirs, write_theirs, at="commit"):
        self.con, self.theirs, self.write_theirs, self.at = con, theirs, write_theirs, at
        self.begins = 0

    def __getattr__(self, name):
        return getattr(self.con, name)

    def _interlope(self):
        if self.theirs:
            theirs, self.theirs = self.theirs, None
            self.write_theirs(theirs)

    def begin(self):
        self.con.begin()
        self.begins += 1
        if self.at == "careful insert" and self.begins == 2:
            self.con.execute("SELECT count(*) FROM gex_snapshots").fetchall()  # the snapshot of what it sees
            self._interlope()

    def commit(self):
        if self.at == "commit":
            self._interlope()
        self.con.commit()


def stored_spots(store):
    return store.read("SELECT timestamp // 1000, spot_price, source FROM gex_snapshots ORDER BY 1")


def strike_rows(store):
    return store.read("SELECT timestamp // 1000, strike FROM gex_strikes ORDER BY 1, 2")


def test_a_key_another_transaction_commits_first_is_a_counted_conflict_not_a_failure(store):
    """A history import commits on a cursor of its own: when it commits a key that live ingest has just written,
    DuckDB refuses ingest's COMMIT. It used to be a database failure (StorageError: the store failing, an
    incident). Now the batch is written again, the key the import stored kept with its own strike rows."""
    imported = msgspec.structs.replace(record(TS, spot=100.0), source="history:1")
    store.con = Interloper(store.con, [imported], lambda theirs: storage.write(store.con.con.cursor(), theirs, kinds.WRITERS))
    assert store.write([record(TS, spot=200.0)], None, (1, 10, 1)) == [False]
    assert store.state == "writable" and store.error is None
    assert store.conflicts == {"ingest": 1, "history": 0}
    assert stored_spots(store) == [(TS, 100.0, "history:1")]
    assert strike_rows(store) == [(TS, 90.0), (TS, 95.0)]  # the import's two rows, once
    assert store.journal_position() == (1, 10, 1)


def test_a_key_committed_while_the_careful_retry_runs_is_a_conflict_too(store):
    """The batch's first key is stored already (the careful retry follows); its second is committed by the import
    once the retry's transaction has begun: the careful INSERT itself meets it. Written again, both found stored,
    and no batch written record by record."""
    store.write([record(TS, spot=1.0)], None, (1, 10, 1))
    store.con = Interloper(store.con, [record(TS + 1, spot=100.0)],
                           lambda theirs: storage.write(store.con.con.cursor(), theirs, kinds.WRITERS), at="careful insert")
    assert store.write([record(TS, spot=2.0), record(TS + 1, spot=200.0)], None, (1, 20, 3)) == [False, False]
    assert store.conflicts == {"ingest": 1, "history": 0}
    assert [spot for _, spot, _ in stored_spots(store)] == [1.0, 100.0]
    assert len(strike_rows(store)) == 4
    assert store.journal_position() == (1, 20, 3)


class Recommitter(Interloper):
    """Stands for what CI met: a transaction begun just after another one's COMMIT, while that commit is still being
    made visible, meets its keys again in the careful INSERT, so one key conflicts more than once. Made to happen
    every time: each of the first `rounds` transactions begins with the key (at TS) gone and meets it committed anew."""

    def __init__(self, con, key_record, rounds):
        super().__init__(con, None, None)
        self.key_record, self.rounds = key_record, rounds

    def begin(self):
        if self.begins >= self.rounds:
            self.con.begin()
            return
        other = self.con.cursor()
        for table in ("gex_strikes", "gex_snapshots"):
            other.execute(f"DELETE FROM {table} WHERE timestamp // 1000 = ?", [TS])
        self.con.begin()
        self.begins += 1
        self.con.execute("SELECT count(*) FROM gex_snapshots").fetchall()
        storage.write(other, [self.key_record], kinds.WRITERS)


def test_a_key_that_conflicts_again_and_again_is_retried_not_written_record_by_record(store, caplog):
    """More conflicts than records: each is still another writer's commit of the key, so the batch is written again
    (a little later each time) instead of record by record, which CI saw as a warning beside a clean import."""
    theirs = msgspec.structs.replace(record(TS, spot=100.0), source="history:1")
    store.con = Recommitter(store.con, theirs, rounds=4)
    assert store.write([record(TS, spot=200.0)], None, (1, 10, 1)) == [False]
    assert store.conflicts == {"ingest": 3, "history": 0}
    assert [r.message for r in caplog.records if r.levelname == "WARNING"] == []
    assert stored_spots(store) == [(TS, 100.0, "history:1")]
    assert strike_rows(store) == [(TS, 90.0), (TS, 95.0)]
    assert store.journal_position() == (1, 10, 1)


def test_a_staged_chunk_whose_commit_conflicts_with_live_ingest_is_written_again_and_counted(store):
    """importer.import_data inserts each chunk before its file has passed the rule and commits it after: live
    ingest that commits one of its keys in between makes that commit conflict. The chunk is written again without
    that key, which ingest stored, counted as history's conflict."""
    body = json.dumps([snapshot(timestamp=TS + i, n_strikes=2, spot=100.0) for i in range(3)]).encode()
    counted = []
    hooks = importer.Hooks(committing=lambda records: store.write([record(TS + 1, spot=200.0)], None, (1, 10, 1)),
                           on_conflict=lambda: counted.append(1))
    imported = importer.import_data(store.con.cursor(), body, "SPX", "gex_zero", "history:1", hooks=hooks)
    assert (imported.snapshots, imported.strike_rows, imported.found, imported.problems) == (2, 4, 3, [])
    assert counted == [1]
    assert stored_spots(store) == [(TS, 100.0, "history:1"), (TS + 1, 200.0, "live"), (TS + 2, 100.0, "history:1")]
    assert len(strike_rows(store)) == 6


def test_an_import_chunk_conflicting_with_live_ingest_is_written_again_and_counted(store):
    """The other way round: live ingest commits a key of the chunk the import is writing. The import's chunk is
    written again without that key, which ingest stored; the job goes on (no exception), counted as history's."""
    chunk = [msgspec.structs.replace(record(TS + i, spot=100.0), source="history:1") for i in range(3)]
    live = Interloper(store.con.cursor(), [record(TS + 1, spot=200.0)],
                      lambda theirs: store.write(theirs, None, (1, 10, 1)))
    counted = []
    assert importer.write_chunk(live, chunk, importer.NO_LOCK, on_conflict=lambda: counted.append(1)) == (2, 4)
    assert counted == [1]
    assert stored_spots(store) == [(TS, 100.0, "history:1"), (TS + 1, 200.0, "live"), (TS + 2, 100.0, "history:1")]
    assert len(strike_rows(store)) == 6


def test_an_import_says_how_many_snapshots_it_has_inserted_chunk_after_chunk_before_committing(store, monkeypatch):
    """What `python -m gexsrv import` shows while it works (its bar counts them): before, nothing moved between the
    download and the end of a full day's import (about 5 s)."""
    monkeypatch.setattr(importer, "CHUNK", 2)
    body = json.dumps([snapshot(timestamp=TS + i, n_strikes=1) for i in range(5)]).encode()
    said = []
    hooks = importer.Hooks(inserted=said.append, progress=lambda snapshots, rows: said.append(("stored", snapshots)))
    imported = importer.import_data(store.con.cursor(), body, "SPX", "gex_zero", "history:1", hooks=hooks)
    assert (imported.snapshots, imported.found) == (5, 5)
    assert said == [2, 4, 5, ("stored", 2), ("stored", 4), ("stored", 5)]
