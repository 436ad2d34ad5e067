#!/usr/bin/env bash
# Bulk-loads generated users for the scale benchmark:
#   scripts/load-users.sh COUNT [FIRST_ID] [PREFIX]
# writes run/users/<PREFIX>.csv (`name,password` lines for `tt-idle run
# --csv`) and run/users/<PREFIX>.tsv (IMUser rows), then loads the rows
# into MariaDB with LOAD DATA LOCAL INFILE (one statement, so a million
# users take seconds). Users are PREFIX<id> with password pw<id>, ids
# FIRST_ID (default 1000000) to FIRST_ID+COUNT-1, stored as db_proxy_server
# checks them (md5(md5(password) + salt)). Rows whose id already exists are
# replaced. Database from TT_MYSQL_URL (default
# mysql://teamtalk:teamtalk@127.0.0.1:3306) and TT_MYSQL_DB (default
# teamtalk). Needs target/release/tt-idle (cargo build --release -p tt-client).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

count=${1:?usage: scripts/load-users.sh COUNT [FIRST_ID] [PREFIX]}
first=${2:-1000000}
prefix=${3:-idle}
[[ $count =~ ^[0-9]+$ && $first =~ ^[0-9]+$ && $prefix =~ ^[A-Za-z0-9_]+$ ]] || {
    echo "load-users: COUNT and FIRST_ID are numbers, PREFIX letters, digits and _" >&2
    exit 2
}
bin=target/release/tt-idle
[ -x "$bin" ] || cargo build --release -p tt-client --bin tt-idle

url=${TT_MYSQL_URL:-mysql://teamtalk:teamtalk@127.0.0.1:3306}
rest=${url#mysql://}
creds=${rest%@*}
hostport=${rest#*@}
hostport=${hostport%%/*}
user=${creds%%:*}
pass=${creds#*:}
host=${hostport%:*}
port=${hostport##*:}
db=${TT_MYSQL_DB:-teamtalk}

mkdir -p run/users
csv=run/users/$prefix.csv
tsv=run/users/$prefix.tsv
"$bin" users --count "$count" --first-id "$first" --prefix "$prefix" --csv "$csv" --tsv "$tsv"
columns=$("$bin" users --columns)

# The password goes through a private defaults file, never the command line.
defaults=$(mktemp)
trap 'rm -f "$defaults"' EXIT
chmod 600 "$defaults"
printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n' "$user" "$pass" "$host" "$port" >"$defaults"
started=$(date +%s.%N)
mariadb --defaults-extra-file="$defaults" --local-infile=1 "$db" -e \
    "LOAD DATA LOCAL INFILE '$(pwd)/$tsv' REPLACE INTO TABLE IMUser FIELDS TERMINATED BY '\t' ($columns)"
ended=$(date +%s.%N)
echo "load-users: $count users $prefix$first.. loaded into $db in $(echo "$ended - $started" | bc)s; clients read $csv"
