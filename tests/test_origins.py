"""Secure by default (gexsrv.origins): a page of a site not allowed can neither write nor read, in a real headless
Chromium and over plain HTTP; the original's browser clients (the Unusual Whales userscript, the gexbot page
script's text/plain sendBeacon) and requests without Origin keep working; a rebound DNS name gets 403."""

import json

import pytest

from helpers import CHROMEDRIVER, CHROMIUM, FRAME, REBOUND, eventually, snapshot, wait_job
from helpers import HISTORY_NAME as HISTORY, HISTORY_OPEN as TS

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless Chromium: install Debian's chromium and chromium-driver (.ci/run does, when it may)")

# What a page's script can do to the server at `url`: a text/plain POST (a "simple" request: no preflight), a read
# of the newest data, and a beacon as the gexbot page script sends its history URLs.
ATTEMPT = """
const [url, snapshot, history, done] = arguments;
(async () => {
    const result = {};
    try {
        const reply = await fetch(url + "/gex?ack=ingested", {method: "POST", body: snapshot,
                                                             headers: {"Content-Type": "text/plain"}});
        result.write = [reply.status, await reply.json()];
    } catch (error) {
        result.write = "unreadable: " + error.name;
    }
    try {
        result.read = await (await fetch(url + "/api/latest")).json();
    } catch (error) {
        result.read = "unreadable: " + error.name;
    }
    result.beacon = navigator.sendBeacon(url + "/gex_history_url", history);
    done(result);
})();
"""


def history_request(files, spot):
    return json.dumps({"url": f"{files.url}/status/404/{HISTORY}",
                       "raw_body": [snapshot(timestamp=TS, n_strikes=2, spot=spot)]})


def stored(server):
    with server.db() as db:
        return (db.execute("SELECT ticker, timestamp // 1000, spot_price, source FROM gex_snapshots "
                           "ORDER BY source").fetchall(),
                db.execute("SELECT count(*) FROM gex_history_queue").fetchone()[0])


def refused_in_log(server, path):
    return f"403 POST {path}" in server.log_path.read_text()


@needs_chromium
def test_a_page_of_another_site_can_neither_write_nor_read_unless_allowed(hist, files, browser, tmp_path):
    (files.folder / "page.html").write_text("<html><body>a page of another site</body></html>")
    guarded = hist()
    browser.get(f"{files.url}/files/page.html")
    attempt = browser.execute_async_script(ATTEMPT, guarded.url, json.dumps(snapshot(spot=1.0)),
                                           history_request(files, 2.0))
    assert attempt == {"write": "unreadable: TypeError", "read": "unreadable: TypeError", "beacon": True}
    eventually(lambda: refused_in_log(guarded, "/gex_history_url"), "the beacon refused")
    assert refused_in_log(guarded, "/gex?ack=ingested")
    browser.get(f"{guarded.url}/")  # the server's own page may post (its Origin is the server's)
    own = browser.execute_async_script(ATTEMPT, guarded.url, json.dumps(snapshot(spot=3.0)), "{}")
    assert own["write"][0] == 202 and own["read"]["SPX"]["combined"]["spot"] == 3.0
    guarded.stop()
    assert stored(guarded) == ([("SPX", 1777492800, 3.0, "live")], 0)

    opened = hist("--allowed-origins", files.url, data_dir=tmp_path / "opened")
    browser.get(f"{files.url}/files/page.html")
    attempt = browser.execute_async_script(ATTEMPT, opened.url, json.dumps(snapshot(spot=1.0)),
                                           history_request(files, 2.0))
    assert attempt["write"][0] == 202 and attempt["read"]["SPX"]["combined"]["spot"] == 1.0
    assert attempt["beacon"] is True
    job = eventually(lambda: opened.get("/gex_history_url").json()["jobs"], "the beacon's job queued")[0]
    assert wait_job(opened, job["id"])["status"] == "completed"
    opened.stop()
    assert stored(opened) == ([("SPX", TS, 2.0, f"history:{job['id']}"), ("SPX", 1777492800, 1.0, "live")], 1)


@needs_chromium
def test_a_page_that_rebinds_its_name_to_the_server_gets_403(shared_server, browser):
    browser.get(shared_server.url.replace("127.0.0.1", REBOUND[0]) + "/api/latest")
    shown = json.loads(browser.find_element("tag name", "body").text)
    assert shown["setting"] == "allowed_hosts" and "'rebound.test:" in shown["error"]


def test_the_original_browser_clients_keep_working_and_others_are_refused(hist, files):
    server = hist()
    userscript = {"Origin": "https://unusualwhales.com"}
    beacon = {"Origin": "https://www.gexbot.com", "Content-Type": "text/plain;charset=UTF-8"}
    uw = server.post("/uw", FRAME, userscript)
    queued = server.post("/gex_history_url", history_request(files, 2.0).encode(), beacon)
    plain = server.post("/gex?ack=ingested", snapshot(spot=5.0))  # no Origin: curl, pollers, scripts
    assert (uw.status, queued.status, plain.status) == (200, 202, 202), (uw.body, queued.body, plain.body)
    assert uw.headers["Access-Control-Allow-Origin"] == "https://unusualwhales.com"
    assert queued.headers["Access-Control-Allow-Origin"] == "https://www.gexbot.com"
    assert "Access-Control-Allow-Origin" not in plain.headers and plain.headers["Vary"] == "Origin"
    refused = {origin: server.post("/gex", snapshot(spot=9.0), {"Origin": origin})
               for origin in ("https://evil.example", "null", "http://www.gexbot.com", "https://gexbot.com.evil")}
    for origin, reply in refused.items():
        assert reply.status == 403, origin
        assert reply.json() == {"status": "error", "setting": "allowed_origins", "error": (
            f"Origin {origin!r} is not allowed: add it to the allowed_origins setting to let pages of that site "
            "use this server")}
        assert "Access-Control-Allow-Origin" not in reply.headers
    read = server.request("GET", "/api/latest", headers={"Origin": "https://evil.example"})
    assert read.status == 403 and b"7138" not in read.body
    assert wait_job(server, queued.json()["id"])["status"] == "completed"
    server.stop()
    assert stored(server) == ([("SPX", TS, 2.0, f"history:{queued.json()['id']}"),
                               ("SPX", 1777492800, 5.0, "live")], 1)
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM universal_webhooks").fetchone() == (1,)


@pytest.mark.parametrize("origin, status", [("https://unusualwhales.com", 204), ("https://evil.example", 403)])
def test_a_preflight_is_answered_for_allowed_origins_only(shared_server, origin, status):
    reply = shared_server.request("OPTIONS", "/uw", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"})
    assert reply.status == status
    allowed = status == 204
    assert (reply.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    assert (reply.headers.get("Access-Control-Allow-Private-Network") == "true") is allowed


def test_host_names_not_allowed_get_403_and_addresses_always_pass(start_server, tmp_path):
    server = start_server()
    port = server.url.rsplit(":", 1)[1]
    replies = {host: server.request("GET", "/api/latest", headers={"Host": host})
               for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "192.168.1.7:8877",
                            f"rebound.test:{port}", "gex.lan")}
    assert {host: reply.status for host, reply in replies.items()} == {
        f"localhost:{port}": 200, f"127.0.0.1:{port}": 200, "[::1]": 200, "192.168.1.7:8877": 200,
        f"rebound.test:{port}": 403, "gex.lan": 403}
    assert replies["gex.lan"].json() == {"status": "error", "setting": "allowed_hosts", "error": (
        "Host 'gex.lan' is not allowed: add its name to the allowed_hosts setting (a defence against DNS rebinding)")}
    write = server.request("POST", "/gex?ack=ingested", json.dumps(snapshot()).encode(), {"Host": "gex.lan"})
    assert write.status == 403
    server.stop()
    assert stored(server) == ([], 0)
    named = start_server(tmp_path / "named", "--allowed-hosts", "gex.lan,*.gex.lan")
    assert [named.request("GET", "/api/latest", headers={"Host": host}).status
            for host in ("gex.lan:8877", "a.gex.lan", "localhost", "rebound.test")] == [200, 200, 403, 403]
