"""Store.write on a real DuckDB file: one transaction per batch with its journal position, duplicates found by the
unique index, and a record the database refuses on its own refused alone."""

import json

import duckdb
import msgspec
import pytest

from gexsrv import gexwrite, store as storage  # noqa: F401  (gexwrite registers the GEX kinds)
from gexsrv.decode import Rules, decode_gex
from gexsrv.store import RecordRefused, StorageError, Store
from helpers import snapshot

TS = 1777492800


def record(ts, ticker="SPX"):
    """A decoded snapshot as ingest holds it: with its body, from which the strike rows are read."""
    body = json.dumps(snapshot(ticker=ticker, timestamp=ts, n_strikes=2)).encode()
    return decode_gex(body, Rules(), 0).held()


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "data"))
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
        storage.write(FullDisk(store.con, failing={1, 3}), batch)
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
