"""A staged history file written through a Sink, on real files: several MiB, plain or gzip, come out whole (the Sink
syncs what it wrote every durable.SYNC_EVERY bytes as well as at its end)."""

import gzip
import hashlib
import os

import pytest

from gexsrv import durable
from gexsrv.history.staging import Sink


@pytest.mark.parametrize("packed", [False, True])
def test_a_file_of_several_mib_is_staged_whole(tmp_path, packed):
    content = os.urandom(durable.SYNC_EVERY * 3 + 12345).hex().encode()
    raw = gzip.compress(content, compresslevel=1) if packed else content
    sink = Sink(str(tmp_path), "job-1", max_bytes=len(content))
    for at in range(0, len(raw), 65536):
        sink.feed(raw[at:at + 65536])
    assert sink.finish() == hashlib.sha256(content).hexdigest()
    with open(sink.path, "rb") as f:
        assert f.read() == content
