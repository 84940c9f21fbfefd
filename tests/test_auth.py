"""Optional shared-secret authentication of /gex and /uw: bearer token and HMAC-SHA256 body signatures."""

import hashlib
import hmac
import json
import types

from gexsrv import auth
from helpers import snapshot

TOKEN = "s3cret-token"
SECRET = "hmac-secret"
FRAME = [None, None, "news", "new_msg", {"title": "hello"}]


def sign(body, secret=SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def conf(token="", secret=""):
    return types.SimpleNamespace(auth_token=token, auth_hmac_secret=secret)


def test_checks_pass_when_off_and_name_what_is_wrong_when_on():
    body = b'{"a":1}'
    assert auth.token_problem(conf(), None) is None
    assert auth.signature_problem(conf(), body, None) is None
    on = conf(TOKEN, SECRET)
    assert auth.token_problem(on, f"Bearer {TOKEN}") is None
    assert auth.token_problem(on, f"bearer {TOKEN}") is None
    assert auth.token_problem(on, None) == "missing bearer token (Authorization: Bearer <token>)"
    assert auth.token_problem(on, f"Basic {TOKEN}").startswith("missing bearer token")
    assert auth.token_problem(on, "Bearer nope") == "bad bearer token"
    assert auth.token_problem(on, "Bearer s3cret-tokén") == "bad bearer token"  # non-ASCII must not raise
    assert auth.signature_problem(on, body, sign(body)) is None
    assert auth.signature_problem(on, body, sign(body).upper().replace("SHA256=", "sha256=")) is None
    assert auth.signature_problem(on, body + b" ", sign(body)) == "bad signature"
    assert auth.signature_problem(on, body, sign(body, "other")) == "bad signature"
    assert auth.signature_problem(on, body, "md5=abc").startswith("missing signature")
    assert auth.signature_problem(on, body, None).startswith("missing signature")


def test_bearer_token_guards_gex_and_uw(start_server):
    server = start_server(None, env={"GEXSRV_AUTH_TOKEN": TOKEN})
    good = {"Authorization": f"Bearer {TOKEN}"}
    refused = [server.post("/uw", FRAME), server.post("/gex", snapshot()),
               server.post("/uw", FRAME, {"Authorization": "Bearer wrong"}),
               server.post("/gex", snapshot(), {"Authorization": "Bearer wrong"})]
    assert [r.status for r in refused] == [401] * 4
    assert refused[0].json() == {"status": "error", "error": "missing bearer token (Authorization: Bearer <token>)"}
    assert refused[3].json() == {"status": "error", "error": "bad bearer token"}
    headers = {name.lower(): value for name, value in refused[0].headers.items()}
    assert headers["www-authenticate"] == 'Bearer realm="gexsrv"'
    assert server.request("OPTIONS", "/uw").status == 204  # CORS preflights carry no credentials
    assert server.post("/uw", FRAME, good).status == 200
    assert server.post("/gex?ack=ingested", snapshot(), good).status == 202
    assert server.get("/health").json()["stored_since_start"] == {"uw": 1, "snapshot": 1, "strike_rows": 5}


def test_hmac_signature_guards_gex_and_uw(start_server):
    server = start_server(None, env={"GEXSRV_AUTH_HMAC_SECRET": SECRET})
    uw_body, gex_body = json.dumps(FRAME).encode(), json.dumps(snapshot()).encode()
    refused = [server.post("/uw", uw_body), server.post("/gex", gex_body),
               server.post("/uw", uw_body, {"X-Signature": sign(gex_body)}),
               server.post("/gex", gex_body, {"X-Signature": sign(gex_body, "guess")})]
    assert [r.status for r in refused] == [401] * 4
    assert [r.json()["error"] for r in refused[2:]] == ["bad signature", "bad signature"]
    assert server.post("/uw", uw_body, {"X-Signature": sign(uw_body)}).status == 200
    assert server.post("/gex?ack=ingested", gex_body, {"X-Signature": sign(gex_body)}).status == 202
    assert server.get("/health").json()["stored_since_start"] == {"uw": 1, "snapshot": 1, "strike_rows": 5}


def test_reads_need_the_same_credentials_as_writes(start_server):
    """With only HMAC on, an unsigned GET once listed every history job, pre-signed URLs included."""
    server = start_server(None, env={"GEXSRV_AUTH_HMAC_SECRET": SECRET, "GEXSRV_AUTH_TOKEN": TOKEN})
    token = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/gex_history_url", "/gex_history_url/1", "/api/latest", "/integrity", "/api/status",
                 "/api/snapshots?ticker=SPX", "/gex_history_url/days"):
        unsigned = server.request("GET", path, headers=token)
        signed_other = server.request("GET", path, headers={**token, "X-Signature": sign(b"/gex_history_url/2")})
        signed = server.request("GET", path, headers={**token, "X-Signature": sign(path.encode())})
        no_token = server.request("GET", path, headers={"X-Signature": sign(path.encode())})
        assert (unsigned.status, signed_other.status, no_token.status) == (401, 401, 401), path
        assert signed.status in (200, 404), (path, signed.status, signed.body)
    assert server.get("/health").status == 200  # liveness stays open; it shows no stored data
    # a Prometheus scrape sends the token and cannot sign
    assert server.request("GET", "/metrics", headers=token).status == 200
    assert server.request("GET", "/metrics").status == 401
