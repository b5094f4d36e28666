#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests and benchmarks, never the system's:
#   scripts/postgres.sh start DIR [SETTING=VALUE...]   initdb in DIR, start it on a free port; prints its URL
#   scripts/postgres.sh stop DIR                       stop it (the caller removes DIR)
#   scripts/postgres.sh resume DIR                     start a stopped one again, as it was (an outage's end)
# DIR is made the server user's; its parent must be open to that user (use a `mktemp -d` directory as DIR).
# It listens on 127.0.0.1 and on a Unix socket in DIR; the URL names the socket.
# Run as root, the server runs as the `postgres` user (initdb refuses root).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server is not installed (apt-get install postgresql)" >&2; exit 1; }
as_server() {
    # From /, which the server's user may enter (the caller's directory may be closed to it).
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
command=${1:?start or stop}
dir=${2:?a directory}
case "$command" in
start)
    shift 2
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # ICU's en-US as the default collation, not byte order: a listing that sorts text without `COLLATE "C"`
    # sorts differently from SQLite here, and a test shows it.
    as_server "$bin/initdb" -D "$dir/data" -A trust -U hikyaku -E UTF8 --locale=C.UTF-8 --locale-provider=icu --icu-locale=en-US \
        >"$dir/initdb.log"
    options="-p $port -k $dir -c listen_addresses=127.0.0.1"
    for setting in "$@"; do options="$options -c $setting"; done
    echo "$options" >"$dir/options"
    as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$options" -w start >/dev/null
    echo "postgres://hikyaku@/postgres?host=$dir&port=$port"
    ;;
stop)
    [ -d "$dir/data" ] && as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
resume)
    as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$(cat "$dir/options")" -w start >/dev/null
    ;;
*)
    echo "usage: $0 start|stop|resume DIR" >&2
    exit 2
    ;;
esac
