#!/usr/bin/env bash
# Makes this machine ready to build and test tt-rs; safe to run again and again.
#
#   bash scripts/deps.sh        (scripts/test.sh and scripts/up.sh source it)
#
# - Rust: cargo must be on PATH (~/.cargo/env is sourced when present);
#   a C compiler is installed (build-essential, pkg-config) only if `cc` is missing.
# - MariaDB on 127.0.0.1:3306 and Redis on 127.0.0.1:6379: whatever already
#   answers there is used as it is; otherwise the Debian packages are
#   installed (first time only) and the servers started (no systemd needed).
# - The MariaDB account teamtalk/teamtalk, for 'localhost' and '127.0.0.1',
#   with ALL PRIVILEGES on databases matching `teamtalk%` (tests create and
#   drop teamtalk_test_*), and the database `teamtalk` (utf8mb4). Set up
#   through root's unix socket (Debian's default), or with
#   TT_MYSQL_ROOT_PASSWORD for a server whose root has a password.
# - sql/schema.sql, then sql/demo.sql if present, are loaded into `teamtalk`
#   when schema.sql exists and the database has no table yet.
# - Redis: group_member_<id> hashes absent for groups of `teamtalk` are filled
#   from IMGroupMember (a C++ db_proxy_server cannot see a group without one).
#
# Output of apt-get and of the servers' start-up goes to $TT_DEPS_LOG
# (default /tmp/tt-rs-deps.log), so no daemon keeps our stdout open.

set -euo pipefail

tt_deps_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TT_DEPS_LOG=${TT_DEPS_LOG:-${TMPDIR:-/tmp}/tt-rs-deps.log}
tt_wait_secs=${TT_DEPS_WAIT:-60}
tt_apt_updated=0
tt_sudo=()
tt_log_mark=0

tt_say() { printf '%s\n' "$*"; }
tt_die() {
    printf 'deps: ERROR: %s\n' "$*" >&2
    exit 1
}

# True when something accepts TCP connections on host $1 port $2.
tt_port_open() {
    timeout 1 bash -c ": </dev/tcp/$1/$2" 2>/dev/null
}

# Waits up to $tt_wait_secs for host $2 port $3 to answer; $1 names it.
tt_wait_port() {
    local name=$1 host=$2 port=$3 i
    for ((i = 0; i < tt_wait_secs; i++)); do
        if tt_port_open "$host" "$port"; then
            tt_say "$name: up on $host:$port"
            return 0
        fi
        sleep 1
    done
    tt_die_log "$name: nothing answers on $host:$port after ${tt_wait_secs}s"
}

# Runs "$@" with no stdin and its output appended to the log (so a daemon it
# starts does not hold our stdout open).
tt_logged() {
    tt_log_mark=$(wc -l <"$TT_DEPS_LOG")
    "$@" </dev/null >>"$TT_DEPS_LOG" 2>&1
}

# Dies with message $1 after showing what the last tt_logged command logged.
tt_die_log() {
    tail -n "+$((tt_log_mark + 1))" "$TT_DEPS_LOG" | tail -n 30 >&2 || true
    tt_die "$1 (log: $TT_DEPS_LOG)"
}

# Removes pid file $1 when the process it names is gone or a zombie: a server
# killed without its init script leaves one, and mysqld_safe then refuses to
# start while the dead pid is still a zombie.
tt_clear_stale_pid() {
    local file=$1 pid state=""
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/stat" ]; then
        read -r _ _ state _ <"/proc/$pid/stat" || true
        [ "$state" = Z ] || return 0
    fi
    tt_say "removing stale pid file $file"
    "${tt_sudo[@]}" rm -f "$file"
}

tt_need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            tt_die "installing packages needs root (or sudo): run this script as root"
        tt_sudo=(sudo)
    fi
}

# Installs Debian packages "$@" (apt-get update once per run).
tt_apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        tt_die "apt-get not found: install $* by hand (this script knows Debian/Ubuntu only)"
    tt_need_root
    tt_say "apt: installing $* (log: $TT_DEPS_LOG)"
    if [ "$tt_apt_updated" -eq 0 ]; then
        tt_logged "${tt_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update ||
            tt_die_log "apt-get update failed"
        tt_apt_updated=1
    fi
    tt_logged "${tt_sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@" ||
        tt_die_log "apt-get install $* failed"
}

# --- Rust toolchain ---------------------------------------------------------

tt_check_tools() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        tt_die "cargo not found on PATH: install Rust with rustup (https://rustup.rs), then open a new shell or run '. ~/.cargo/env'"
    if ! command -v cc >/dev/null 2>&1; then
        tt_apt_install build-essential pkg-config
    fi
    tt_say "rust: $(cargo --version)"
}

# --- MariaDB ----------------------------------------------------------------

tt_mysql_client() {
    command -v mariadb 2>/dev/null || command -v mysql 2>/dev/null || true
}

# The MariaDB/MySQL server binary, or nothing when none is installed.
tt_mariadbd() {
    local d
    for d in "$(command -v mariadbd || true)" "$(command -v mysqld || true)" \
        /usr/sbin/mariadbd /usr/sbin/mysqld; do
        if [ -n "$d" ] && [ -x "$d" ]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
}

tt_start_mariadb() {
    tt_need_root
    tt_clear_stale_pid /run/mysqld/mysqld.pid
    if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/mariadb ]; then
        tt_say "mariadb: starting (service mariadb start)"
        if tt_logged "${tt_sudo[@]}" service mariadb start; then
            return 0
        fi
        tt_say "mariadb: 'service mariadb start' failed (see $TT_DEPS_LOG); starting it directly"
    fi
    "${tt_sudo[@]}" install -d -o mysql -g mysql -m 0755 /run/mysqld
    local safe
    safe=$(command -v mysqld_safe || command -v mariadbd-safe || true)
    if [ -n "$safe" ]; then
        tt_say "mariadb: starting ($safe in the background)"
        "${tt_sudo[@]}" setsid "$safe" </dev/null >>"$TT_DEPS_LOG" 2>&1 &
    else
        local daemon
        daemon=$(tt_mariadbd)
        [ -n "$daemon" ] || tt_die "mariadb: no mysqld_safe or mariadbd found after installing mariadb-server"
        tt_say "mariadb: starting ($daemon --user=mysql in the background)"
        "${tt_sudo[@]}" setsid "$daemon" --user=mysql </dev/null >>"$TT_DEPS_LOG" 2>&1 &
    fi
}

tt_ensure_mariadb() {
    if tt_port_open 127.0.0.1 3306; then
        tt_say "mariadb: already running on 127.0.0.1:3306"
    else
        if [ -z "$(tt_mariadbd)" ]; then
            tt_apt_install mariadb-server mariadb-client
        fi
        tt_start_mariadb
        tt_wait_port mariadb 127.0.0.1 3306
    fi
    if [ -z "$(tt_mysql_client)" ]; then
        tt_apt_install mariadb-client
    fi
    tt_ensure_teamtalk_account
    tt_load_schema
}

# Runs the client as teamtalk over TCP, with extra arguments "$@".
tt_mysql_teamtalk() {
    MYSQL_PWD=teamtalk "$(tt_mysql_client)" -uteamtalk -h127.0.0.1 -P3306 --batch --skip-column-names "$@"
}

# True when the account exists with its password, can create/drop a
# teamtalk_test_* database, and database teamtalk exists.
tt_account_ok() {
    tt_mysql_teamtalk -e "CREATE DATABASE IF NOT EXISTS teamtalk_test_deps_probe;
        DROP DATABASE teamtalk_test_deps_probe; USE teamtalk;" >/dev/null 2>&1
}

tt_ensure_teamtalk_account() {
    if tt_account_ok; then
        tt_say "mariadb: account teamtalk@127.0.0.1 and database teamtalk ok"
        return 0
    fi
    local client sql
    client=$(tt_mysql_client)
    sql="CREATE USER IF NOT EXISTS 'teamtalk'@'localhost' IDENTIFIED BY 'teamtalk';
CREATE USER IF NOT EXISTS 'teamtalk'@'127.0.0.1' IDENTIFIED BY 'teamtalk';
ALTER USER 'teamtalk'@'localhost' IDENTIFIED BY 'teamtalk';
ALTER USER 'teamtalk'@'127.0.0.1' IDENTIFIED BY 'teamtalk';
GRANT ALL PRIVILEGES ON \`teamtalk%\`.* TO 'teamtalk'@'localhost';
GRANT ALL PRIVILEGES ON \`teamtalk%\`.* TO 'teamtalk'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS teamtalk CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
FLUSH PRIVILEGES;"
    # root as this unix user over the socket (Debian's unix_socket auth), then
    # with sudo, then with TT_MYSQL_ROOT_PASSWORD over the socket and over TCP.
    local -a tries=("$client -uroot")
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        tries+=("sudo -n $client -uroot")
    fi
    local how ok=0
    for how in "${tries[@]}"; do
        # shellcheck disable=SC2086
        if printf '%s\n' "$sql" | $how >>"$TT_DEPS_LOG" 2>&1; then
            ok=1
            break
        fi
    done
    if [ "$ok" -eq 0 ] && [ -n "${TT_MYSQL_ROOT_PASSWORD:-}" ]; then
        if printf '%s\n' "$sql" | MYSQL_PWD=$TT_MYSQL_ROOT_PASSWORD "$client" -uroot >>"$TT_DEPS_LOG" 2>&1 ||
            printf '%s\n' "$sql" | MYSQL_PWD=$TT_MYSQL_ROOT_PASSWORD "$client" -uroot -h127.0.0.1 -P3306 >>"$TT_DEPS_LOG" 2>&1; then
            ok=1
        fi
    fi
    if [ "$ok" -eq 0 ]; then
        cat >&2 <<EOF
deps: ERROR: cannot log in to MariaDB/MySQL on 127.0.0.1:3306 as root to create
the tt-rs account. Either set TT_MYSQL_ROOT_PASSWORD to root's password and run
again, or run these statements yourself as an administrator:

$sql

EOF
        exit 1
    fi
    tt_account_ok ||
        tt_die "mariadb: account teamtalk was set up but cannot create/drop teamtalk_test_* over 127.0.0.1:3306 (log: $TT_DEPS_LOG)"
    tt_say "mariadb: account teamtalk@localhost/127.0.0.1 and database teamtalk created"
}

tt_load_schema() {
    local schema=$tt_deps_root/sql/schema.sql demo=$tt_deps_root/sql/demo.sql
    local offline=$tt_deps_root/sql/offline_files.sql
    [ -f "$schema" ] || return 0
    local tables
    tables=$(tt_mysql_teamtalk -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'teamtalk'")
    # IMTransmitFile: used by the C++ code, absent from ttopen.sql; idempotent.
    if [ -f "$offline" ]; then
        tt_mysql_teamtalk teamtalk <"$offline" || tt_die "loading $offline failed"
    fi
    if [ "$tables" != 0 ]; then
        tt_say "mariadb: database teamtalk has $tables tables; schema not reloaded"
        return 0
    fi
    tt_say "mariadb: loading sql/schema.sql into teamtalk"
    tt_mysql_teamtalk teamtalk <"$schema" || tt_die "loading $schema failed"
    if [ -f "$demo" ]; then
        tt_say "mariadb: loading sql/demo.sql into teamtalk"
        tt_mysql_teamtalk teamtalk <"$demo" || tt_die "loading $demo failed"
    fi
}

# --- Redis ------------------------------------------------------------------

tt_start_redis() {
    tt_need_root
    tt_clear_stale_pid /run/redis/redis-server.pid
    if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/redis-server ]; then
        tt_say "redis: starting (service redis-server start)"
        if tt_logged "${tt_sudo[@]}" service redis-server start; then
            return 0
        fi
        tt_say "redis: 'service redis-server start' failed (see $TT_DEPS_LOG); starting it directly"
    fi
    local dir=/var/lib/redis
    [ -d "$dir" ] || dir=${TMPDIR:-/tmp}
    tt_say "redis: starting (redis-server --daemonize yes --bind 127.0.0.1)"
    tt_logged "${tt_sudo[@]}" redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$dir" ||
        tt_die_log "redis: redis-server did not start"
}

tt_ensure_redis() {
    if tt_port_open 127.0.0.1 6379; then
        tt_say "redis: already running on 127.0.0.1:6379"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        tt_apt_install redis-server
    fi
    tt_start_redis
    tt_wait_port redis 127.0.0.1 6379
}

# --- group member hashes for a C++ db_proxy_server ---------------------------

# The C++ db_proxy_server knows a group only by its Redis hash
# group_member_<id> (written when a group is created through it), so a group
# written by SQL alone, like sql/demo.sql's, is invisible to it: no group
# info, and messages to it are dropped without an answer. Ours rebuilds the
# hash from IMGroupMember. For swapping binaries either way, fill the hashes
# that are absent from the active rows of database teamtalk (user id ->
# updated, as both servers write them), in the Redis db of conf/
# dbproxyserver.conf's group_member_db. Present hashes are left alone.
tt_fill_group_member_hashes() {
    command -v redis-cli >/dev/null 2>&1 || return 0
    local conf=$tt_deps_root/conf/dbproxyserver.conf db rows gid uid updated
    [ -f "$conf" ] || return 0
    db=$(sed -n 's/^group_member_db=\([0-9][0-9]*\).*/\1/p' "$conf" | head -n 1)
    [ -n "$db" ] || return 0
    rows=$(tt_mysql_teamtalk -e "SELECT groupId, userId, updated FROM teamtalk.IMGroupMember WHERE status = 0 ORDER BY groupId" 2>/dev/null) || return 0
    local -A absent=()
    local filled=0
    while read -r gid uid updated; do
        [ -n "$gid" ] || continue
        if [ -z "${absent[$gid]+x}" ]; then
            absent[$gid]=$(redis-cli -h 127.0.0.1 -p 6379 -n "$db" EXISTS "group_member_$gid")
            [ "${absent[$gid]}" = 0 ] && filled=$((filled + 1))
        fi
        if [ "${absent[$gid]}" = 0 ]; then
            redis-cli -h 127.0.0.1 -p 6379 -n "$db" HSET "group_member_$gid" "$uid" "$updated" >/dev/null
        fi
    done <<<"$rows"
    if [ "$filled" != 0 ]; then
        tt_say "redis: filled $filled group member hash(es) in db $db from IMGroupMember"
    fi
}

# --- main -------------------------------------------------------------------

tt_deps_main() {
    : >>"$TT_DEPS_LOG" || tt_die "cannot write the log $TT_DEPS_LOG (set TT_DEPS_LOG)"
    tt_check_tools
    tt_ensure_mariadb
    tt_ensure_redis
    tt_fill_group_member_hashes
}

tt_deps_main
