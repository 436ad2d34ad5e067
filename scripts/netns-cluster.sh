#!/usr/bin/env bash
# Runs the tt-rs cluster across five network hosts made on this machine, to
# show that nothing in it assumes loopback: `scripts/netns-cluster.sh [BIN_DIR]`.
#
#   host A 198.18.0.1  route_server, login_server
#   host B 198.18.0.2  db_proxy_server, with a private MariaDB and Redis bound
#                      to 198.18.0.2 (reached over that address, not loopback)
#   host C 198.18.0.3  msg_server (IpAddr1=198.18.0.3)
#   host D 198.18.0.4  msg_server (IpAddr1=198.18.0.4)
#   host E 198.18.0.5  the clients: `tt`, through login_server's HTTP answer
#
# Each host is a network namespace (`tt-<pid>-a` .. `tt-<pid>-e`) with one
# veth into a bridge in a sixth, switch-only namespace (`tt-<pid>-sw`). The
# hosts have no 127.0.0.1 (lo is up, for a host's traffic to its own address,
# but without addresses) and no route but 198.18.0.0/24 (RFC 2544's
# benchmarking range), so loopback cannot be used by mistake and no
# packet leaves the namespaces; the root namespace's interfaces and routes
# are never touched. Every server runs with the shipped conf/ file, each
# 127.0.0.1 in it replaced by the address of the host the key points at.
#
# Checks: every server listens on its host's address and says so in its log
# (and no log names 127.0.0.1); db_proxy's MariaDB and Redis connections come
# from B's address; login_server spreads the demo users alice, bob, carol,
# dave over C and D; users on C and D chat 1:1 both ways and in group 1; a
# second login at the other host kicks the first
# (`tt: kicked: KICK_REASON_DUPLICATE_USER`).
#
# BIN_DIR (or $TT_BIN_DIR) holds route_server, login_server, db_proxy_server,
# msg_server and tt; nothing is built here. Default: target/debug or
# target/release, whichever has them all and is newer.
#
# Needs root, `ip` (iproute2) with network namespaces, veth and bridge, and
# mariadbd, mariadb-install-db, the mariadb client, redis-server and
# redis-cli (scripts/deps.sh installs them).
#
# Exit: 0 every check passed, 1 a check failed (the servers' logs are shown),
# 2 bad usage or BIN_DIR lacks a binary, 77 skipped (why is printed): not
# root, no `ip`, namespaces not permitted, or a database binary missing.
# TT_NETNS_WAIT (seconds, default 30) bounds every wait; TT_NETNS_KEEP=1
# keeps the scratch directory (confs, logs) for a look afterwards.

set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # ip and mariadbd, also when root's PATH lacks them

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wait_secs=${TT_NETNS_WAIT:-30}
net=198.18.0
declare -A addr=([a]=$net.1 [b]=$net.2 [c]=$net.3 [d]=$net.4 [e]=$net.5)
hosts=(a b c d e)
ns_prefix=tt-$$
binaries=(route_server login_server db_proxy_server msg_server tt)

say() { printf 'netns-cluster: %s\n' "$*"; }
skip() {
    say "SKIP: $*"
    exit 77
}

# --- what is needed ---------------------------------------------------------

case "${1:-}" in
-h | --help)
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac
[ $# -le 1 ] || {
    echo "usage: scripts/netns-cluster.sh [BIN_DIR]" >&2
    exit 2
}

# has_binaries DIR: true when DIR holds every binary we run.
has_binaries() {
    local b
    for b in "${binaries[@]}"; do
        [ -x "$1/$b" ] || return 1
    done
}

bin_dir=${1:-${TT_BIN_DIR:-}}
if [ -z "$bin_dir" ]; then
    for d in "$root/target/debug" "$root/target/release"; do
        has_binaries "$d" || continue
        if [ -z "$bin_dir" ] || [ "$d/msg_server" -nt "$bin_dir/msg_server" ]; then
            bin_dir=$d
        fi
    done
    [ -n "$bin_dir" ] || {
        echo "netns-cluster: no target/debug or target/release holds ${binaries[*]}: run 'cargo build --workspace --bins' first, or name BIN_DIR" >&2
        exit 2
    }
fi
bin_dir=$(cd "$bin_dir" && pwd)
has_binaries "$bin_dir" || {
    echo "netns-cluster: $bin_dir lacks one of ${binaries[*]}" >&2
    exit 2
}

[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (this is uid $(id -u))"
command -v ip >/dev/null 2>&1 || skip "no 'ip' command (Debian package iproute2)"

first_of() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
        if [ -x "/usr/sbin/$c" ]; then
            printf '%s\n' "/usr/sbin/$c"
            return 0
        fi
    done
}
mariadbd=$(first_of mariadbd mysqld)
install_db=$(first_of mariadb-install-db mysql_install_db)
mysql_client=$(first_of mariadb mysql)
redis_server=$(first_of redis-server)
redis_cli=$(first_of redis-cli)
missing=()
[ -n "$mariadbd" ] || missing+=(mariadbd)
[ -n "$install_db" ] || missing+=(mariadb-install-db)
[ -n "$mysql_client" ] || missing+=("mariadb (client)")
[ -n "$redis_server" ] || missing+=(redis-server)
[ -n "$redis_cli" ] || missing+=(redis-cli)
[ ${#missing[@]} -eq 0 ] ||
    skip "missing ${missing[*]}: scripts/deps.sh installs mariadb-server and redis-server"

say "binaries from $bin_dir"

# --- clean-up, whatever happens --------------------------------------------

scratch=$(mktemp -d "${TMPDIR:-/tmp}/tt-netns.XXXXXX")
made_ns=()
pids=()     # every process we started, in start order
declare -A fds=() # user -> fd of its prompt's stdin

# alive PID: true while PID runs (a zombie, or a pid bash already reaped,
# does not count).
alive() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 1
    [ "$state" != Z ]
}
gone() { ! alive "$1"; }

cleanup() {
    local rc=$? pid i ns p
    set +e
    trap - EXIT INT TERM
    for fd in "${fds[@]}"; do
        exec {fd}>&-
    done
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do
        p=0
        for pid in "${pids[@]}"; do
            alive "$pid" && p=1
        done
        [ "$p" = 1 ] || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    # Anything still inside our namespaces was started by this run.
    for ns in "${made_ns[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$p" 2>/dev/null
        done
    done
    wait 2>/dev/null
    for ((i = ${#made_ns[@]} - 1; i >= 0; i--)); do
        ip netns del "${made_ns[i]}" 2>/dev/null
    done
    if [ "${TT_NETNS_KEEP:-0}" = 1 ]; then
        say "kept $scratch"
    else
        rm -rf "$scratch"
    fi
    [ ${#made_ns[@]} -eq 0 ] || say "removed namespaces ${made_ns[*]}"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Logs shown when a check fails.
logs=()

fail() {
    local f
    say "FAILED: $*" >&2
    for f in "${logs[@]}"; do
        [ -f "$f" ] || continue
        printf -- '---- %s (last 25 lines) ----\n' "${f#"$scratch"/}" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

# until_ok SECS WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails
# naming WHAT after SECS seconds.
until_ok() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what (waited ${secs}s)"
        sleep 0.1
    done
}

ns() { printf '%s-%s\n' "$ns_prefix" "$1"; }
in_host() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$@"
}

# --- the network ------------------------------------------------------------

make_ns() {
    ip netns add "$1" 2>"$scratch/ip.err" ||
        skip "cannot create network namespace $1: $(head -n 1 "$scratch/ip.err")"
    made_ns+=("$1")
}

sw=$(ns sw)
make_ns "$sw"
ip -n "$sw" link add br0 type bridge 2>"$scratch/ip.err" ||
    skip "cannot create a bridge in a namespace: $(head -n 1 "$scratch/ip.err")"
ip -n "$sw" link set br0 up
for h in "${hosts[@]}"; do
    make_ns "$(ns "$h")"
    ip -n "$sw" link add name "to-$h" type veth peer name eth0 netns "$(ns "$h")" 2>"$scratch/ip.err" ||
        skip "cannot create a veth pair between namespaces: $(head -n 1 "$scratch/ip.err")"
    ip -n "$sw" link set "to-$h" master br0 up
    in_host "$h" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
    ip -n "$(ns "$h")" addr add "${addr[$h]}/24" dev eth0
    ip -n "$(ns "$h")" link set eth0 up
    # lo must be up for a host to reach its own address (B's servers talk
    # to each other over 198.18.0.2), but without 127.0.0.1 on it.
    ip -n "$(ns "$h")" link set lo up
    ip -n "$(ns "$h")" addr flush dev lo
done
in_host a true 2>"$scratch/ip.err" ||
    skip "cannot run a command in a namespace (ip netns exec): $(head -n 1 "$scratch/ip.err")"
say "network: namespaces ${made_ns[*]}; hosts A-E at ${addr[a]}-${net}.5/24 on a bridge in $sw; no 127.0.0.1, no other route"

# --- processes --------------------------------------------------------------

# start NAME HOST DIR CMD...: runs CMD in network host HOST with working
# directory DIR, its output in DIR/NAME.log.
start() {
    local name=$1 h=$2 dir=$3
    shift 3
    mkdir -p "$dir"
    logs+=("$dir/$name.log")
    (cd "$dir" && exec ip netns exec "$(ns "$h")" "$@") </dev/null >"$dir/$name.log" 2>&1 &
    pids+=($!)
}

# port_open HOST IP PORT: something in network host HOST accepts TCP on IP:PORT.
port_open() {
    in_host "$1" timeout 1 bash -c ": </dev/tcp/$2/$3" 2>/dev/null
}

# open_or_dead WHAT PID IP PORT: true when IP:PORT answers host E; fails at
# once when PID, the process WHAT that should answer, has exited.
open_or_dead() {
    alive "$2" || fail "$1 (pid $2) exited before it answered on $3:$4"
    port_open e "$3" "$4"
}

# wait_port WHAT IP PORT: waits until WHAT, the process started last, answers
# on IP:PORT, seen from host E.
wait_port() {
    until_ok "$wait_secs" "$1 does not answer on $2:$3 from host E" \
        open_or_dead "$1" "${pids[${#pids[@]} - 1]}" "$2" "$3"
    say "$1: answers on $2:$3 (seen from host E)"
}

# --- host B: Redis and MariaDB ---------------------------------------------

B=${addr[b]}
mkdir -p "$scratch/redis"
start redis b "$scratch/redis" "$redis_server" --bind "$B" --port 6379 --save '' --protected-mode no \
    --appendonly no --dir "$scratch/redis" --daemonize no
wait_port "redis (host B)" "$B" 6379

db=$scratch/mariadb
mkdir -p "$db"
logs+=("$db/install.log")
"$install_db" --no-defaults --datadir="$db/data" --user=root \
    --auth-root-authentication-method=socket --skip-test-db >"$db/install.log" 2>&1 ||
    fail "$install_db failed"
start mariadbd b "$db" "$mariadbd" --no-defaults --user=root --datadir="$db/data" \
    --socket="$db/mysqld.sock" --pid-file="$db/mysqld.pid" --tmpdir="$db" \
    --bind-address="$B" --port=3306 --skip-name-resolve --skip-log-bin \
    --innodb-buffer-pool-size=32M
sql() { "$mysql_client" --no-defaults -uroot --socket="$db/mysqld.sock" --batch --skip-column-names "$@"; }
sql_up() { sql -e 'SELECT 1' >/dev/null 2>&1; }
until_ok "$wait_secs" "mariadbd does not answer on its socket" sql_up
wait_port "mariadb (host B)" "$B" 3306
sql -e "CREATE DATABASE teamtalk CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER 'teamtalk'@'$net.%' IDENTIFIED BY 'teamtalk';
GRANT ALL PRIVILEGES ON teamtalk.* TO 'teamtalk'@'$net.%';" || fail "creating the teamtalk account"
for f in schema offline_files demo; do
    [ -f "$root/sql/$f.sql" ] || continue
    sql teamtalk <"$root/sql/$f.sql" || fail "loading sql/$f.sql"
done
say "mariadb: database teamtalk with sql/schema.sql and sql/demo.sql; account teamtalk@'$net.%'"

# --- the servers ------------------------------------------------------------

# make_conf SRC DEST ADDR [KEYPREFIX=ADDR...]: the conf SRC with 127.0.0.1 in
# each value replaced by ADDR, or by the ADDR of the first KEYPREFIX its key
# starts with. Comment lines stay as they are.
make_conf() {
    local src=$1 dest=$2 def=$3
    shift 3
    awk -v def="$def" -v overrides="$*" '
        BEGIN { n = split(overrides, o, " ")
                for (i = 1; i <= n; i++) { split(o[i], kv, "="); pre[i] = kv[1]; to[i] = kv[2] } }
        /^[ \t]*#/ || index($0, "=") == 0 { print; next }
        { eq = index($0, "="); key = substr($0, 1, eq - 1); gsub(/[ \t]/, "", key)
          val = substr($0, eq + 1); a = def
          for (i = 1; i <= n; i++) if (index(key, pre[i]) == 1) { a = to[i]; break }
          gsub(/127\.0\.0\.1/, a, val); print substr($0, 1, eq) val }' "$src" >"$dest"
    if sed 's/#.*//' "$dest" | grep -nE '127\.|localhost' >"$scratch/loopback"; then
        fail "$dest still names loopback: $(cat "$scratch/loopback")"
    fi
}

# conf_get FILE KEY: KEY's value as the servers read it (cut at '#', trimmed).
conf_get() {
    awk -v k="$2" '{ sub(/#.*/, ""); eq = index($0, "="); if (!eq) next
        key = substr($0, 1, eq - 1); gsub(/[ \t]/, "", key); if (key != k) next
        v = substr($0, eq + 1); gsub(/^[ \t]+|[ \t]+$/, "", v); print v; exit }' "$1"
}

A=${addr[a]} C=${addr[c]} D=${addr[d]}
run=$scratch/run

mkdir -p "$run/route_server" "$run/login_server" "$run/db_proxy_server" \
    "$run/msg_server_c" "$run/msg_server_d"
make_conf "$root/conf/routeserver.conf" "$run/route_server/routeserver.conf" "$A"
make_conf "$root/conf/loginserver.conf" "$run/login_server/loginserver.conf" "$A"
make_conf "$root/conf/dbproxyserver.conf" "$run/db_proxy_server/dbproxyserver.conf" "$B"
for h in c d; do
    make_conf "$root/conf/msgserver.conf" "$run/msg_server_$h/msgserver.conf" "${addr[$h]}" \
        DBServerIP="$B" LoginServerIP="$A" RouteServerIP="$A" PushServerIP="$A" FileServerIP="$A"
done
route_port=$(conf_get "$run/route_server/routeserver.conf" ListenMsgPort)
login_conf=$run/login_server/loginserver.conf
client_port=$(conf_get "$login_conf" ClientPort)
http_port=$(conf_get "$login_conf" HttpPort)
login_msg_port=$(conf_get "$login_conf" MsgServerPort)
db_port=$(conf_get "$run/db_proxy_server/dbproxyserver.conf" ListenPort)
msg_port=$(conf_get "$run/msg_server_c/msgserver.conf" ListenPort)
say "confs: conf/*.conf with 127.0.0.1 moved to each host's address (in $run)"

export RUST_LOG=${RUST_LOG:-info}
start route_server a "$run/route_server" "$bin_dir/route_server"
wait_port route_server "$A" "$route_port"
start login_server a "$run/login_server" "$bin_dir/login_server"
for p in "$client_port" "$http_port" "$login_msg_port"; do
    wait_port login_server "$A" "$p"
done
start db_proxy_server b "$run/db_proxy_server" "$bin_dir/db_proxy_server"
wait_port db_proxy_server "$B" "$db_port"
for h in c d; do
    start msg_server "$h" "$run/msg_server_$h" "$bin_dir/msg_server"
    wait_port "msg_server (host ${h^^})" "${addr[$h]}" "$msg_port"
done
login_log=$run/login_server/login_server.log
for h in c d; do
    until_ok "$wait_secs" "login_server never registered the msg_server on ${addr[$h]}" \
        grep -q "ip_addr1=${addr[$h]}," "$login_log"
    say "login_server: msg_server on host ${h^^} registered with IpAddr1=${addr[$h]}"
done

# --- the checks -------------------------------------------------------------

# Loopback cannot be used by mistake: nothing answers on 127.0.0.1 on host A,
# though login_server listens there on 198.18.0.1:HttpPort.
! port_open a 127.0.0.1 "$http_port" || fail "host A answers on 127.0.0.1:$http_port"
say "host A: 127.0.0.1:$http_port does not answer (no loopback address on any host)"

# Each server's log names the non-loopback address it listens on, and no log
# names 127.0.0.1.
log_names() {
    grep -qF "$2" "$1" || fail "$(basename "$1") does not name $2"
}
log_names "$run/route_server/route_server.log" "$A:$route_port"
for p in "$client_port" "$http_port" "$login_msg_port"; do
    log_names "$login_log" "$A:$p"
done
log_names "$run/db_proxy_server/db_proxy_server.log" "$B:$db_port"
for h in c d; do
    log_names "$run/msg_server_$h/msg_server.log" "${addr[$h]}:$msg_port"
done
say "logs: route_server and login_server name $A:$route_port, :$client_port, :$http_port, :$login_msg_port; db_proxy_server $B:$db_port; the msg_servers $C:$msg_port and $D:$msg_port"

# db_proxy's MariaDB and Redis connections come from B's own address.
mysql_hosts=$(sql -e "SELECT host FROM information_schema.processlist WHERE user = 'teamtalk'")
[ -n "$mysql_hosts" ] || fail "db_proxy_server holds no MariaDB connection"
if grep -v "^$B:" <<<"$mysql_hosts" >/dev/null; then
    fail "a MariaDB connection of teamtalk does not come from $B: $mysql_hosts"
fi
redis_clients=$(in_host b "$redis_cli" -h "$B" -p 6379 CLIENT LIST | grep -v 'cmd=client' || true)
[ -n "$redis_clients" ] || fail "db_proxy_server holds no Redis connection"
if grep -v " addr=$B:" <<<"$redis_clients" >/dev/null; then
    fail "a Redis connection does not come from $B: $redis_clients"
fi
say "db_proxy_server: $(wc -l <<<"$mysql_hosts") MariaDB and $(wc -l <<<"$redis_clients") Redis connections, all from $B"

# Users log in from host E through login_server's HTTP answer, one after the
# other; login_server spreads them over C and D.
users=(alice bob carol dave)
declare -A host_of=() pid_of=() uid_of=([alice]=1 [bob]=2 [carol]=3 [dave]=4)
tt_login=(ip netns exec "$(ns e)" "$bin_dir/tt" --login "$A:$http_port")
clients=$scratch/clients
mkdir -p "$clients"
for u in "${users[@]}"; do
    mkfifo "$clients/$u.in"
    exec {fd}<>"$clients/$u.in"
    fds[$u]=$fd
    logs+=("$clients/$u.out" "$clients/$u.err")
    "${tt_login[@]}" login "$u" 123456 <"$clients/$u.in" >"$clients/$u.out" 2>"$clients/$u.err" &
    pids+=($!)
    pid_of[$u]=$!
    until_ok "$wait_secs" "$u did not log in through login_server" grep -qs '^logged in as' "$clients/$u.out"
    for h in c d; do
        if grep -q "user_name: $u, uid: ${uid_of[$u]} logged in" "$run/msg_server_$h/msg_server.log"; then
            host_of[$u]=$h
        fi
    done
    [ -n "${host_of[$u]:-}" ] || fail "$u logged in, but neither msg_server logged it"
    say "$u: logged in from host E at the msg_server on host ${host_of[$u]^^} (${addr[${host_of[$u]}]}:$msg_port), as login_server answered"
done
on_c=() on_d=()
for u in "${users[@]}"; do
    if [ "${host_of[$u]}" = c ]; then on_c+=("$u"); else on_d+=("$u"); fi
done
if [ ${#on_c[@]} -eq 0 ] || [ ${#on_d[@]} -eq 0 ]; then
    fail "login_server sent every user to one msg_server (C: ${on_c[*]:-none}; D: ${on_d[*]:-none})"
fi
uc=${on_c[0]} ud=${on_d[0]}
if command -v ss >/dev/null 2>&1; then
    for h in c d; do
        n=$(in_host e ss -Htn state established dst "${addr[$h]}:$msg_port" | wc -l)
        [ "$n" -gt 0 ] || fail "host E holds no connection to the msg_server on ${addr[$h]}:$msg_port"
        say "host E holds $n client connection(s) to ${addr[$h]}:$msg_port"
    done
fi

# tell USER LINE: types LINE at USER's prompt.
tell() { printf '%s\n' "$2" >&"${fds[$1]}"; }
# arrives USER TEXT: waits until TEXT shows in USER's output.
arrives() {
    until_ok "$wait_secs" "'$2' never reached $1" grep -qsF -- "$2" "$clients/$1.out"
}

text="one-to-one C to D $$"
tell "$uc" "send $ud $text"
arrives "$ud" "$text"
say "1:1: $uc (host C) -> $ud (host D) delivered"
text="one-to-one D to C $$"
tell "$ud" "send $uc $text"
arrives "$uc" "$text"
say "1:1: $ud (host D) -> $uc (host C) delivered"

for sender in "$uc" "$ud"; do
    h=${host_of[$sender]^^}
    text="group from $h $$"
    tell "$sender" "gsend 1 $text"
    for u in "${users[@]}"; do
        [ "$u" = "$sender" ] || arrives "$u" "$text"
    done
    say "group 1: $sender (host $h) -> every other member, on C and on D, delivered"
done

# A second login of $ud (on D), straight at C's address (the IpAddr1 that
# login_server hands out for C, so it surely lands on the other host): D
# kicks the first session through route_server on A.
text="from the second login $$"
logs+=("$clients/second.out")
in_host e timeout "$wait_secs" "$bin_dir/tt" --server "$C:$msg_port" \
    send --as "$ud:123456" "$uc" "$text" >"$clients/second.out" 2>&1 ||
    fail "the second login of $ud at host C failed"
arrives "$uc" "$text"
until_ok "$wait_secs" "$ud's first session (host D) was not ended by the second login on C" \
    gone "${pid_of[$ud]}"
code=0
wait "${pid_of[$ud]}" || code=$?
kick=$(cat "$clients/$ud.err")
if [ "$code" != 1 ] || [ "$kick" != "tt: kicked: KICK_REASON_DUPLICATE_USER" ]; then
    fail "$ud's first session ended with code $code, saying '$kick'"
fi
grep -q "kick user ${uid_of[$ud]} " "$run/msg_server_d/msg_server.log" ||
    fail "the msg_server on D did not log the kick of $ud"
say "kick: a second login of $ud at host C ended the session on host D ('$kick')"

for f in "$run"/*/*.log; do
    if grep -n '127\.0\.0\.1' "$f" >"$scratch/loopback"; then
        fail "$(basename "$f") names loopback: $(head -n 3 "$scratch/loopback")"
    fi
done
say "no server log names 127.0.0.1"
say "OK: the cluster ran across hosts A-E"
