#!/usr/bin/env bash
# Brings the tt-rs cluster up on this machine: `scripts/up.sh [MSG_SERVERS]`
# (or `TT_MSG_SERVERS=N scripts/up.sh`; default 1).
#
# 1. scripts/deps.sh: Rust, MariaDB and Redis on loopback, the teamtalk account.
# 2. cargo build --release of the eight servers.
# 3. Stops what a previous up.sh started (scripts/down.sh), then starts each
#    server in run/<server>/ (its working directory, where it finds its .conf
#    copied from conf/, as the C++ servers did), in dependency order, with its
#    output in run/<server>/<server>.log and its pid in run/<server>/<server>.pid.
#
# With more than one msg_server, msg_server number i (1..N) runs in
# run/msg_server<i>/ with conf/msgserver.conf's ListenPort plus i-1 (ports
# another conf in conf/ uses are skipped), all registering with the same
# login_server and route_server; with one it runs in run/msg_server/.
#
# A server that exits at start-up stops this script with the end of its log.
# Stop everything with scripts/down.sh.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

msg_servers=${1:-${TT_MSG_SERVERS:-1}}
if ! [[ $msg_servers =~ ^[0-9]+$ ]] || [ "$msg_servers" -lt 1 ] || [ "$msg_servers" -gt 1000 ]; then
    echo "up: the msg_server count must be a number from 1 to 1000, not '$msg_servers'" >&2
    exit 2
fi

# shellcheck source=scripts/deps.sh
. scripts/deps.sh

echo "up: cargo build --release --workspace --bins"
cargo build --release --workspace --bins

bash scripts/down.sh

# server, its run/ directory name, its .conf, and the IP-key:port-key
# pairs it listens on.
servers=(
    "route_server route_server routeserver.conf ListenIP:ListenMsgPort MetricsListenIP:MetricsPort"
    "login_server login_server loginserver.conf ClientListenIP:ClientPort HttpListenIP:HttpPort MsgServerListenIP:MsgServerPort MetricsListenIP:MetricsPort"
    "db_proxy_server db_proxy_server dbproxyserver.conf ListenIP:ListenPort MetricsListenIP:MetricsPort"
)
if [ "$msg_servers" -eq 1 ]; then
    servers+=("msg_server msg_server msgserver.conf ListenIP:ListenPort MetricsListenIP:MetricsPort")
else
    for ((i = 1; i <= msg_servers; i++)); do
        servers+=("msg_server msg_server$i msgserver.conf ListenIP:ListenPort MetricsListenIP:MetricsPort")
    done
fi
servers+=(
    "file_server file_server fileserver.conf ClientListenIP:ClientListenPort MsgServerListenIP:MsgServerListenPort MetricsListenIP:MetricsPort"
    "msfs msfs msfs.conf ListenIP:ListenPort MetricsListenIP:MetricsPort"
    "http_msg_server http_msg_server httpmsgserver.conf ListenIP:ListenPort MetricsListenIP:MetricsPort"
    "push_server push_server pushserver.conf ListenIP:ListenPort MetricsListenIP:MetricsPort"
)

# trim: strip spaces and tabs at both ends.
trim() {
    local s=$1
    s=${s#"${s%%[![:blank:]]*}"}
    printf '%s' "${s%"${s##*[![:blank:]]}"}"
}

# conf_get FILE KEY: the value as the C++ reader sees it (cut at the first
# '#', split at the first '=', trimmed; the first of duplicate keys wins).
conf_get() {
    local line k
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        [[ $line == *=* ]] || continue
        k=$(trim "${line%%=*}")
        if [ "$k" = "$2" ]; then
            trim "${line#*=}"
            return 0
        fi
    done <"$1"
    return 1
}

# conf_set FILE KEY VALUE: the first line setting KEY now sets VALUE.
conf_set() {
    local line k done=0 out
    out=$(mktemp)
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$done" -eq 0 ] && [[ ${line%%#*} == *=* ]]; then
            k=$(trim "${line%%=*}")
            if [ "$k" = "$2" ]; then
                line="$2=$3"
                done=1
            fi
        fi
        printf '%s\n' "$line"
    done <"$1" >"$out"
    mv "$out" "$1"
}

# The ports the shipped confs use: extra msg_servers skip them.
reserved_ports=" "
for f in conf/*.conf; do
    [ "$f" != conf/msgserver.conf ] || continue
    while IFS= read -r line; do
        line=${line%%#*}
        [[ $line == *=* ]] || continue
        k=$(trim "${line%%=*}")
        [[ $k == *Port* ]] || continue
        reserved_ports+="$(trim "${line#*=}") "
    done <"$f"
done
next_msg_port=$(conf_get conf/msgserver.conf ListenPort)

# True when pid $1 is a live, not zombie, process.
alive() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    read -r _ _ state _ <"/proc/$1/stat" || return 1
    [ "$state" != Z ]
}

running=0
for entry in "${servers[@]}"; do
    read -r s name conf listens <<<"$entry"
    dir=run/$name
    mkdir -p "$dir"
    # msfs writes its FileCnt back to its conf when stopped: carry it over.
    file_cnt=""
    if [ "$s" = msfs ] && [ -f "$dir/$conf" ]; then
        file_cnt=$(conf_get "$dir/$conf" FileCnt) || file_cnt=""
        [[ $file_cnt =~ ^[0-9]+$ ]] || file_cnt=""
    fi
    cp "conf/$conf" "$dir/$conf"
    if [ -n "$file_cnt" ]; then
        sed -i "s/^\([[:blank:]]*FileCnt[[:blank:]]*=\)[^#]*/\1$file_cnt/" "$dir/$conf"
    fi
    if [ "$s" = msg_server ] && [ "$msg_servers" -gt 1 ]; then
        while [[ $reserved_ports == *" $next_msg_port "* ]]; do
            next_msg_port=$((next_msg_port + 1))
        done
        conf_set "$dir/$conf" ListenPort "$next_msg_port"
        # The first keeps the shipped metrics port (9104); the others
        # take 9121, 9122...
        n=${name#msg_server}
        [ "$n" = 1 ] || conf_set "$dir/$conf" MetricsPort "$((9119 + n))"
        next_msg_port=$((next_msg_port + 1))
    fi
    log=$dir/$s.log
    pidfile=$dir/$s.pid
    (
        trap '' HUP # keep running when the terminal goes away
        cd "$dir"
        exec "$root/target/release/$s"
    ) </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    for ((i = 0; i < 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if ! alive "$pid"; then
        code=0
        wait "$pid" || code=$?
        rm -f "$pidfile"
        echo "$name: exited with code $code at start-up; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        echo "up: stopping here; scripts/down.sh stops the servers already started" >&2
        exit 1
    fi
    addrs=()
    for pair in $listens; do
        ipkey=${pair%%:*}
        portkey=${pair#*:}
        port=$(conf_get "$dir/$conf" "$portkey") || port="?"
        ips=$(conf_get "$dir/$conf" "$ipkey") || ips="?"
        IFS=';' read -r -a iplist <<<"$ips"
        for ip in "${iplist[@]}"; do
            [ -n "$ip" ] || continue
            probe=$ip
            [ "$probe" != 0.0.0.0 ] || probe=127.0.0.1
            if tt_port_open "$probe" "$port"; then
                addrs+=("$ip:$port")
            else
                addrs+=("$ip:$port (not answering yet)")
            fi
        done
    done
    echo "$name: running, pid $pid, listening on $(printf '%s, ' "${addrs[@]}" | sed 's/, $//'); log $log"
    running=$((running + 1))
done

echo "up: $running running; stop them with scripts/down.sh"
