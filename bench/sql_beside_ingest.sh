#!/bin/bash
# What GET /api/sql queries cost ingest: POST /gex?ack=ingested at 50 req/s (300 strikes) for 20 s, alone, then
# beside back-to-back queries that each run until --sql-timeout-ms (5 s) stops them. A fresh server over a
# temporary data dir; prints loadgen's JSON line for each run and the queries' statuses.
# Usage: bench/sql_beside_ingest.sh [repo dir, default: this one]
set -eu
cd "${1:-$(dirname "$0")/..}"
PY=${PYTHON:-.venv/bin/python}
DIR=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
PYTHONPATH=$PWD $PY -m gexsrv --port 0 --data-dir "$DIR/data" > "$DIR/log" 2>&1 &
SERVER=$!
URL=
while [ -z "$URL" ]; do sleep 0.2; URL=$(grep -o "listening on http://[0-9.:]*" "$DIR/log" | cut -d' ' -f3 || true); done
LOAD="$PY bench/loadgen.py --url $URL --rate 50 --clients 5 --duration 20 --warmup 2 --path /gex?ack=ingested --json"
echo "alone:"
PYTHONPATH=bench $LOAD --start 1777492800
QUERY="q=SELECT count(*) FROM range(1000000000) a, range(1000000) b"
(while kill -0 $SERVER 2>/dev/null; do
    curl -sG "$URL/api/sql" --data-urlencode "$QUERY" -o /dev/null -w "%{http_code}\n" || true
 done) > "$DIR/queries" &
QUERIES=$!
sleep 1
echo "beside queries:"
PYTHONPATH=bench $LOAD --start 1777592800
kill $QUERIES
echo "query replies: $(sort "$DIR/queries" | uniq -c | tr -s ' \n' ' ')"
