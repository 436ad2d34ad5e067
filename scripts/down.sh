#!/usr/bin/env bash
# Stops the servers that scripts/up.sh started: `scripts/down.sh [server...]`
# (all eight when none is named; msg_server means every msg_server, in
# run/msg_server/ and run/msg_server<N>/). Each gets SIGTERM, then SIGKILL if it is
# still there after TT_STOP_WAIT seconds (default 10). Only processes named by
# run/<server>/<server>.pid and still running that binary are signalled.
# MariaDB and Redis are left running.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all=(push_server http_msg_server msfs file_server msg_server db_proxy_server login_server route_server)
[ $# -gt 0 ] || set -- "${all[@]}"
wait_secs=${TT_STOP_WAIT:-10}

# True when pid $1 is a live (not zombie) process running binary $2.
is_server() {
    local pid=$1 name=$2 comm state
    [ -r "/proc/$pid/stat" ] || return 1
    read -r _ _ state _ <"/proc/$pid/stat" || return 1
    [ "$state" != Z ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "${name:0:15}" ] # the kernel keeps 15 characters
}

# server:run-directory pairs, every msg_server directory for msg_server.
targets=()
for s in "$@"; do
    if [ "$s" = msg_server ]; then
        for d in run/msg_server run/msg_server[0-9]*; do
            if [ -d "$d" ]; then targets+=("$s:${d#run/}"); fi
        done
    else
        targets+=("$s:$s")
    fi
done

stopped=0
for t in "${targets[@]}"; do
    s=${t%%:*}
    name=${t#*:}
    pidfile=run/$name/$s.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! is_server "$pid" "$s"; then
        echo "$name: not running (stale pid file removed)"
        rm -f "$pidfile"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_secs * 10; i++)); do
        is_server "$pid" "$s" || break
        sleep 0.1
    done
    if is_server "$pid" "$s"; then
        echo "$name: still running ${wait_secs}s after SIGTERM; sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    echo "$name: stopped (pid $pid)"
    rm -f "$pidfile"
    stopped=$((stopped + 1))
done
[ "$stopped" -gt 0 ] || echo "down: no server was running"
