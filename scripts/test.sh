#!/usr/bin/env bash
# Runs the whole test suite: `scripts/test.sh [extra cargo test arguments]`.
#
# Installs/starts MariaDB and Redis first when needed (scripts/deps.sh),
# checks formatting and clippy (warnings are errors), then runs
# `cargo test --workspace "$@"` against them; exits with cargo's code.
# TT_MYSQL_URL and TT_REDIS_URL, when already set, point the tests elsewhere.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/deps.sh
. scripts/deps.sh

export TT_MYSQL_URL=${TT_MYSQL_URL:-mysql://teamtalk:teamtalk@127.0.0.1:3306}
export TT_REDIS_URL=${TT_REDIS_URL:-redis://127.0.0.1:6379}

# The habits CI holds: formatted code, no clippy warnings (the workspace
# lints: documented public items, no unwrap()/expect() outside tests).
echo "test: cargo fmt --all -- --check"
cargo fmt --all -- --check
echo "test: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "test: cargo test --workspace $*"
exec cargo test --workspace "$@"
