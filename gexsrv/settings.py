"""One Settings value: conf/gexsrv.toml < --config file < environment (and .env) < command-line flags.

The Settings struct is the single table of every setting: its name, type, limits and help text. Defaults live
in conf/gexsrv.toml, so operators read and change them in one file.
"""

import argparse
import difflib
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec
from dotenv import dotenv_values

from gexsrv import decode
from gexsrv.payloads import PayloadError


class ConfigError(SystemExit):
    """A configuration that cannot be used, said in one line; gexsrv.cli prints it and exits with status 2, as
    argparse does for a bad flag."""


def _setting(help_text, env=(), **limits):
    return msgspec.Meta(description=help_text, extra={"env": list(env)}, **limits)


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    host: Annotated[str, _setting("address to listen on")]
    port: Annotated[int, _setting("TCP port to listen on (0 picks a free one)", ge=0, le=65535)]
    debug: Annotated[bool, _setting("debug logging and tracebacks in error replies")]
    data_dir: Annotated[str, _setting("folder holding gex_data.db, source/ and parquet/")]
    processes: Annotated[int, _setting(
        "1: one process serves HTTP, journals and owns the database; 2: a front process serves HTTP and journals, "
        "an engine process owns the database, ingest, history, the lake and the reads (README, Processes)",
        ge=1, le=2)]
    max_body_bytes: Annotated[int, _setting("largest accepted request body, in bytes (413 above)", ge=1)]
    bodies_in_flight_mb: Annotated[int, _setting(
        "request bodies being received at once past which new ones get 503, in MiB", ge=1)]
    body_timeout_s: Annotated[float, _setting("longest a request body may take to arrive, in seconds", gt=0)]
    max_connections: Annotated[int, _setting(
        "HTTP connections open at once past which a new one gets 503 and is closed; it must fit, with 128 "
        "descriptors for the server itself, in the open-file limit (ulimit -n)", ge=1, le=1_000_000)]
    idle_connection_timeout_s: Annotated[float, _setting(
        "how long a connection may wait for its next request (keep-alive) or send its headers, in seconds", gt=0)]
    max_strikes: Annotated[int, _setting(
        "most strike rows a snapshot may have, on every way in (POST /gex, /uw, history files); more get 400",
        ge=1)]
    max_feeds: Annotated[int, _setting(
        "tickers, feeds and newest snapshots each held in memory by the latest views; past it the least recently "
        "updated one is let go of (it stays in DuckDB)", ge=1)]
    shutdown_grace_s: Annotated[float, _setting(
        "on SIGTERM/SIGINT, how long in-flight requests and the last ingest may take before the server exits", gt=0)]
    ingest_interval_ms: Annotated[float, _setting("how often journaled records are ingested into DuckDB, in ms", gt=0)]
    ingest_batch_records: Annotated[int, _setting("records waiting that start an ingest before the interval ends",
                                                  ge=1)]
    ingest_max_records: Annotated[int, _setting("most records ingested in one transaction", ge=1)]
    ingest_memory_mb: Annotated[int, _setting(
        "request bodies held in memory for ingest, in MiB; past it records are read back from the journal", ge=0)]
    backlog_max_records: Annotated[int, _setting("journaled records waiting for ingest past which writes get 503",
                                                 ge=1)]
    backlog_max_mb: Annotated[int, _setting("journal MiB waiting for ingest past which writes get 503", ge=1)]
    journal_dir: Annotated[str, _setting(
        "folder of the write-ahead journal; empty: <data_dir>/journal. A device of its own keeps its fsyncs quick "
        "while history imports and exports write to the data disk")]
    journal_segment_mb: Annotated[int, _setting("journal segment size that starts a new segment, in MiB", ge=1)]
    journal_segment_seconds: Annotated[float, _setting("journal segment age that starts a new segment", gt=0)]
    archive_interval_s: Annotated[float, _setting(
        "seconds between looks for journal segments to archive (closed and wholly ingested)", gt=0)]
    archive_retention_days: Annotated[float, _setting(
        "days the compressed journal archive (data/source/live) is kept; 0 keeps it forever", ge=0)]
    archive_zstd_level: Annotated[int, _setting(
        "zstd level of the journal archive: higher compresses more slowly, negative levels faster and less",
        ge=-7, le=22)]
    duplicate_horizon_s: Annotated[float, _setting(
        "seconds of recent keys kept in memory to tell duplicates apart in replies", ge=0)]
    ack_ingested_timeout_s: Annotated[float, _setting(
        "longest a ?ack=ingested request waits for ingest before a 503 saying it is journaled", gt=0)]
    retry_after_seconds: Annotated[int, _setting("Retry-After sent with 503 replies", ge=0)]
    duckdb_threads: Annotated[int, _setting("threads DuckDB may use; 1 keeps a core for the event loop", ge=1)]
    duckdb_checkpoint_mb: Annotated[int, _setting("WAL size that triggers a DuckDB checkpoint, in MiB", ge=1)]
    duckdb_memory_mb: Annotated[int, _setting("memory DuckDB may use for its cache and queries, in MiB", ge=64)]
    default_endpoint: Annotated[str, _setting("endpoint stored for snapshots that name none")]
    future_tolerance_s: Annotated[float, _setting(
        "seconds a payload's timestamp may be ahead of the server's clock; past it the payload is stored but listed "
        "in the reply's problems and never taken as the latest", ge=0)]
    naive_time_zone: Annotated[str, _setting(
        "zone of ISO times sent without one: local (the server's, as the original read them), UTC or an IANA name")]
    allowed_origins: Annotated[str, _setting(
        "comma-separated origins (scheme://host[:port], * a wildcard) whose web pages may use the server; a request "
        "from another page gets 403, one without Origin (curl, scripts) is not concerned; the server's own page is "
        "always allowed")]
    allowed_hosts: Annotated[str, _setting(
        "comma-separated Host names (* a wildcard) the server answers to, besides IP addresses and --host; others "
        "get 403 (DNS rebinding)")]
    auth_token: Annotated[str, _setting(
        "bearer token (Authorization: Bearer ...) every write and every read of data requires; open: /health, "
        "/openapi.json and the status page's files; empty: off")]
    auth_hmac_secret: Annotated[str, _setting(
        "secret requests sign with: X-Signature: sha256=<HMAC-SHA256 hex of X-Signature-Timestamp, method, path "
        "and query, body> on writes and reads of data (but /metrics); empty: off")]
    auth_signature_window_s: Annotated[float, _setting(
        "how far X-Signature-Timestamp may be from the server's clock, in seconds; a signature is refused a second "
        "time within it", gt=0)]
    auth_legacy_signatures: Annotated[bool, _setting(
        "also accept the old, replayable X-Signature form (no timestamp: HMAC of a write's body or a read's target)")]
    gexbot_api_key: Annotated[str, _setting("gexbot API key of the original's poller and of backfill",
                                            env=["GEXBOT_API_KEY"])]
    gexbot_api_url: Annotated[str, _setting(
        "gexbot API base URL: the poller fetches {url}/{TICKER}/classic/zero, backfill asks {url}/v2/hist/...")]
    gexbot_api_rate: Annotated[float, _setting("most backfill requests to the gexbot API per second", gt=0)]
    gexbot_api_attempts: Annotated[int, _setting(
        "attempts per backfill request to the gexbot API (429, 5xx and network errors)", ge=1)]
    poll_interval: Annotated[float, _setting("seconds between gexbot API polls (the poller runs when a key is set)", gt=0)]
    history_allowed_hosts: Annotated[str, _setting(
        "comma-separated hosts history files may be fetched from; `*.example.com` matches subdomains")]
    history_allowed_networks: Annotated[str, _setting(
        "comma-separated non-global networks (CIDR) history downloads may reach, e.g. 127.0.0.1/32")]
    history_max_bytes: Annotated[int, _setting("largest history file, counted decompressed, in bytes", ge=1)]
    history_connect_timeout: Annotated[float, _setting("history download connect timeout, in seconds", gt=0)]
    history_request_timeout: Annotated[float, _setting("history download whole-request timeout, in seconds", gt=0)]
    history_attempts: Annotated[int, _setting("download attempts per history job (network errors and 5xx)", ge=1)]
    history_backoff_seconds: Annotated[float, _setting(
        "wait before the 2nd attempt of a download or gexbot API request; doubles after each", ge=0)]
    history_fallback_hosts: Annotated[str, _setting(
        "comma-separated host=mirror pairs: a history download from host that fails is tried from mirror "
        "(same path and query)", pattern=r"^\s*([^\s=,]+=[^\s=,]+\s*(,\s*[^\s=,]+=[^\s=,]+\s*)*)?$")]
    history_download_command: Annotated[str, _setting(
        "external downloader run instead of the built-in one, without a shell; {id} {url} {ticker} {endpoint}: it "
        "downloads and imports itself (exit 0 completes the job); with {path} it writes the file there for gexsrv",
        env=["HISTORY_DOWNLOAD_COMMAND"])]
    dashboard_url: Annotated[str, _setting(
        "history requests are POSTed to {url}/api/ingest/history first (2 s; queued here when it fails); empty: "
        "off (the original's default was http://127.0.0.1:5801)", env=["DASHBOARD_URL"])]
    alert_webhook_url: Annotated[str, _setting(
        "Discord/Slack-style incoming webhook for operator alerts (failed history jobs)")]
    discord_bot_token: Annotated[str, _setting(
        "Discord bot token (Authorization: Bot ...) for trade proposals and alert DMs; empty: Discord off",
        env=["DISCORD_BOT_TOKEN"])]
    alt_channel_option_trades: Annotated[str, _setting(
        "Discord channel id that gets a CONFIRM PROPOSAL message per option_trades_super_algo trade",
        env=["ALT_CHANNEL_OPTION_TRADES"], pattern=r"^\d*$")]
    discord_dm_user_id: Annotated[str, _setting(
        "Discord user id sent a short direct message per alert and trade proposal", env=["DISCORD_DM_USER_ID"],
        pattern=r"^\d*$")]
    discord_api_url: Annotated[str, _setting("Discord API base URL; requests go to {url}/api/v10/...")]
    sql_timeout_ms: Annotated[float, _setting(
        "longest a GET /api/sql query may run, in ms; past it the query is stopped and the reply is 504", gt=0)]
    sql_max_rows: Annotated[int, _setting(
        "most rows a GET /api/sql reply holds; past it the reply is cut there and says truncated", ge=1)]
    lake_export_interval: Annotated[float, _setting("seconds between exports of new strikes to Parquet", gt=0)]
    outputs_dir: Annotated[str, _setting(
        "folder where latest.json (the GET /api/latest view) and spot_series.jsonl are kept for the original's "
        "dashboard (the original used outputs/data/raw/gex); empty: off")]


FIELDS = msgspec.inspect.type_info(Settings).fields
# Settings that are gone, and what took their place: a configuration naming one is told, not silently changed.
REPLACED = {"cors_origin": "allowed_origins (the sites whose pages may use the server; `*` is no longer sent)"}
DEFAULTS_FILE = "gexsrv.toml"


def default_config_path():
    """conf/gexsrv.toml of the working directory, of the source tree, or of the installed prefix."""
    candidates = [Path.cwd() / "conf", Path(__file__).resolve().parent.parent / "conf", Path(sys.prefix) / "conf"]
    for folder in candidates:
        if (folder / DEFAULTS_FILE).is_file():
            return folder / DEFAULTS_FILE
    raise ConfigError(f"gexsrv: no conf/{DEFAULTS_FILE} found (looked in {', '.join(map(str, candidates))})")


def env_names(field):
    return [f"GEXSRV_{field.name.upper()}"] + field.type.extra["env"]


def read_toml(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"gexsrv: cannot read config {path}: {exc}")


def from_environment(environ):
    """{setting: (value, the variable it came from)}: the first of its names that is set and not empty."""
    values = {}
    for field in FIELDS:
        for name in env_names(field):
            if environ.get(name, "") != "":
                values[field.name] = (environ[name], name)
                break
    return values


def flag_of(name):
    return "--" + name.replace("_", "-")


def add_arguments(parser, defaults):
    parser.add_argument("--config", metavar="FILE", help="a TOML file whose keys override conf/gexsrv.toml")
    for field in FIELDS:
        flag = flag_of(field.name)
        envs = ", ".join(env_names(field))
        help_text = f"{field.type.extra_json_schema['description']} (default: {defaults.get(field.name)!r}; env {envs})"
        if isinstance(field.type.type, msgspec.inspect.BoolType):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, metavar=field.name.upper(), help=help_text)


def load(args, environ=None, cwd="."):
    """Settings from the defaults file, args.config, the environment plus ./.env, and the parsed flags. An error
    names where the value came from (a file, a variable or a flag) and the value."""
    environ = {**dotenv_values(Path(cwd) / ".env"), **(os.environ if environ is None else environ)}
    merged, origin = {}, {}

    def take(values):
        for name, (value, where) in values.items():
            merged[name], origin[name] = value, where

    defaults_path = default_config_path()
    take({name: (value, f"{name} in {defaults_path}") for name, value in read_toml(defaults_path).items()})
    config = args.config or environ.get("GEXSRV_CONFIG")
    if config:
        take({name: (value, f"{name} in {config}") for name, value in read_toml(config).items()})
    take(from_environment(environ))
    take({f.name: (value, flag_of(f.name)) for f in FIELDS if (value := getattr(args, f.name, None)) is not None})
    for name, successor in REPLACED.items():
        if name in merged or environ.get(f"GEXSRV_{name.upper()}"):
            raise ConfigError(f"gexsrv: the setting {name} is replaced by {successor}")
    unknown = sorted(set(merged) - {f.name for f in FIELDS})
    if unknown:
        raise ConfigError("gexsrv: unknown setting " + "; ".join(map(suggested, (origin[n] for n in unknown))))
    return checked(merged, origin)


def suggested(where):
    """An unknown setting `where` (name in file), with the nearest known name."""
    name = where.split(" in ")[0]
    near = difflib.get_close_matches(name.replace("-", "_").lower(), [f.name for f in FIELDS], n=1)
    return f"{where} (did you mean {near[0]}?)" if near else where


def checked(merged, origin):
    def refused(name, reason):
        return ConfigError(f"gexsrv: invalid {origin.get(name, name)} = {merged.get(name)!r}: {reason}")

    try:
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        reason, _, path = str(exc).rpartition(" - at `$.")
        raise refused(path.rstrip("`").split(".")[0].split("[")[0], reason) from None
    try:
        decode.Rules.from_settings(settings)
    except PayloadError as exc:
        raise refused(exc.field, exc.reason) from None
    except ValueError as exc:  # the one other check there: decode.zone
        raise refused("naive_time_zone", exc) from None
    return settings
