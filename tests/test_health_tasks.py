"""/health says `degraded`, naming the task, its last error, since when and how many failures in a row, while a
background task keeps failing (3 times in a row: gexsrv.streak), and `ok` again once it succeeds. The folders of
the Parquet lake, the raw archive and the original's output files are blocked by a regular file in their way (the
tests run as root, for whom a chmod blocks nothing), then freed; what waited is written then."""

import duckdb
import pytest

from helpers import TS, eventually, snapshot

STRIKES = 4


def failing(server, task):
    """/health once it is degraded by `task`."""
    def check():
        health = server.get("/health").json()
        return health if health["status"] == "degraded" and health["failing_tasks"] else None
    health = eventually(check, f"health degraded by {task}")
    assert [t["task"] for t in health["failing_tasks"]] == [task], health
    return health, health["failing_tasks"][0]


def recovered(server):
    return eventually(lambda: (health := server.get("/health").json())["status"] == "ok" and health,
                      "health ok again")


def lake_rows(data_dir):
    with duckdb.connect() as db:
        return db.execute(f"SELECT count(*) FROM read_parquet('{data_dir}/parquet/gexbot/**/*.strikes.parquet')"
                          ).fetchone()[0]


# task -> (the folder blocked, under the test's temporary folder; the flags that make the task run often)
TASKS = {
    "lake": (("data", "parquet"), ["--lake-export-interval", "0.2"]),
    "archive": (("data", "source", "live"), ["--journal-segment-seconds", "0.2", "--archive-interval-s", "0.2"]),
    "outputs": (("outputs",), ["--outputs-dir", "{tmp}/outputs"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_a_task_failing_again_and_again_degrades_health_until_it_succeeds(start_server, tmp_path, task):
    blocked, flags = TASKS[task]
    obstacle = tmp_path.joinpath(*blocked)
    obstacle.parent.mkdir(parents=True, exist_ok=True)
    obstacle.write_text("in the way")
    server = start_server(tmp_path / "data", *[flag.format(tmp=tmp_path) for flag in flags])
    posted = 0

    def post_and_check():
        nonlocal posted
        posted += 1  # the archive takes a segment once a newer one exists: keep the journal moving
        assert server.post("/gex?ack=ingested", snapshot(timestamp=TS + posted, n_strikes=STRIKES)).status == 202
        health = server.get("/health").json()
        return health["failing_tasks"] and health

    health = eventually(post_and_check, "a failing task listed")
    health, reason = failing(server, task)
    assert reason["failures"] >= 3 and reason["since"], reason
    assert "Not a directory" in reason["error"] or "File exists" in reason["error"], reason
    assert health["storage"]["state"] == "writable"  # nothing else is wrong

    obstacle.unlink()
    health = recovered(server)
    assert health["failing_tasks"] == []
    if task == "lake":
        assert eventually(lambda: lake_rows(tmp_path / "data") == posted * STRIKES, "every row in the lake")
    elif task == "archive":
        assert eventually(lambda: server.get("/health").json()["archive"]["files"], "a segment archived")
    else:
        assert eventually(lambda: (obstacle / "spot_series.jsonl").exists()
                          and len((obstacle / "spot_series.jsonl").read_text().splitlines()) == posted,
                          "every spot line written")
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT count(*), count(DISTINCT timestamp) FROM gex_snapshots").fetchone() == (posted,
                                                                                                          posted)
