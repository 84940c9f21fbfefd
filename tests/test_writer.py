"""Group commit on a real Store: batches form while the writer is busy, a failed commit fails its whole batch, and a
record the database refuses on its own is refused alone."""

import asyncio
import json

import msgspec
import pytest

from gexsrv.buffer import Buffer, Overloaded
from gexsrv.decode import Rules, decode_gex
from gexsrv.store import RecordRefused, StorageError, Store
from gexsrv.writer import Writer
from helpers import snapshot


def record(ts, ticker="SPX"):
    return decode_gex(json.dumps(snapshot(ticker=ticker, timestamp=ts, n_strikes=2)).encode(), Rules(), 0)


def make_writer(tmp_path, max_records=100, buffer_max=1000):
    store = Store(str(tmp_path / "data"))
    store.open()
    writer = Writer(store, None, interval_ms=2, max_records=max_records)
    writer.buffer = Buffer(buffer_max, notify=writer.kick)
    return store, writer


def test_requests_arriving_together_share_one_commit(tmp_path):
    store, writer = make_writer(tmp_path, max_records=100)

    async def scenario():
        writer.start()
        waiters = [writer.buffer.put(record(1777492800 + i)) for i in range(50)]
        results = await asyncio.gather(*waiters)
        await writer.close()
        return results

    assert asyncio.run(scenario()) == [True] * 50
    assert writer.last_batch == 50 and writer.stored["snapshot"] == 50
    assert store.read("SELECT count(*) FROM gex_strikes")[0][0] == 100
    store.close()


def test_batches_are_bounded_by_flush_max_records(tmp_path):
    store, writer = make_writer(tmp_path, max_records=8)

    async def scenario():
        waiters = [writer.buffer.put(record(1777492800 + i)) for i in range(20)]
        writer.start()
        await asyncio.gather(*waiters)
        await writer.close()

    asyncio.run(scenario())
    assert writer.last_batch == 4  # 8 + 8 + 4
    assert store.read("SELECT count(*) FROM gex_snapshots")[0][0] == 20
    store.close()


def test_failed_commit_fails_every_request_of_its_batch_and_the_next_one_recovers(tmp_path):
    store, writer = make_writer(tmp_path)
    broken = store.con
    store.con = broken.cursor()  # a connection we can break under the writer
    store.con.close()

    async def scenario():
        writer.start()
        failing = [writer.buffer.put(record(1777492800 + i)) for i in range(3)]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        state_after_failure = store.state
        store.con = broken
        recovered = await writer.buffer.put(record(1777492900))
        await writer.close()
        return outcomes, state_after_failure, recovered

    outcomes, state, recovered = asyncio.run(scenario())
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert state == "failing" and writer.failed_batches == 1
    assert recovered is True and store.state == "writable"
    assert store.read("SELECT count(*) FROM gex_snapshots")[0][0] == 1
    store.close()


def test_full_buffer_refuses_instead_of_growing(tmp_path):
    store, writer = make_writer(tmp_path, buffer_max=2)

    async def scenario():
        first = [writer.buffer.put(record(1777492800 + i)) for i in range(2)]
        with pytest.raises(Overloaded):
            writer.buffer.put(record(1777492900))
        writer.start()
        await asyncio.gather(*first)
        await writer.close()

    asyncio.run(scenario())
    assert writer.buffer.rejected == 1
    store.close()


def test_a_record_the_database_refuses_fails_alone_and_its_batch_mates_are_stored(tmp_path):
    """Decoding checks values against their columns; should one slip through anyway, it must not take its batch
    down with it: the batch is retried record by record."""
    store, writer = make_writer(tmp_path)
    guilty = record(1777492805)
    guilty = msgspec.structs.replace(guilty, row=msgspec.structs.replace(guilty.row, min_dte=2**31))

    async def scenario():
        batch = [record(1777492800 + i) for i in range(5)] + [guilty] + [record(1777492810 + i) for i in range(5)]
        waiters = [writer.buffer.put(r) for r in batch]
        writer.start()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        await writer.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes[:5] == [True] * 5 and outcomes[6:] == [True] * 5
    assert isinstance(outcomes[5], RecordRefused) and "2147483648" in str(outcomes[5])
    assert store.state == "writable" and writer.stored["refused"] == 1
    assert sorted(ts for (ts,) in store.read("SELECT timestamp // 1000 FROM gex_snapshots")) == [
        1777492800 + i for i in range(5)] + [1777492810 + i for i in range(5)]
    assert store.read("SELECT count(*) FROM gex_strikes")[0][0] == 20
    store.close()
