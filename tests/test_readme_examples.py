"""The README's quick start and read examples, run as written against a real server: the reads return the quick
start's own snapshot (the /api/snapshots example returned [] when its `until`, exclusive, sat on it)."""

import re

from helpers import REPO

README = (REPO / "README.md").read_text()


def quick_start_body():
    found = re.search(r"curl -s -XPOST localhost:8877/gex -d '(.+?)'\n", README, re.S)
    return found.group(1).encode()


def read_examples():
    return re.findall(r"curl '(localhost:8877/api/(?:snapshots|strikes)\?[^']+)'", README)


def test_the_read_examples_return_the_quick_starts_snapshot(server):
    assert server.request("POST", "/gex?ack=ingested", quick_start_body()).status == 202
    examples = read_examples()
    assert len(examples) == 2
    snapshots, strikes = (server.get(url.removeprefix("localhost:8877")).json() for url in examples)
    assert [(s["timestamp"], s["spot"]) for s in snapshots["snapshots"]] == [(1777492800000, 7138.55)]
    assert strikes["strikes"] == [[7135.0, -228.0, -86.9, [-240.5, -243.1, -245.2, -221.2, -220.1]]]
