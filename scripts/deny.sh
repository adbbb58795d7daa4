#!/usr/bin/env bash
# The supply chain (deny.toml): licenses, bans and sources always; advisories
# against the RustSec database, which cargo-deny fetches from its git host.
# Where that host cannot be reached, a copy already on the machine is used;
# with neither, the advisories check says it was skipped and why.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "deny: installing cargo-deny from crates.io"
  cargo install --locked --quiet cargo-deny
fi
cargo deny check licenses bans sources
# cargo-deny exits 0 from a fetch that could not reach the host, so what
# counts is whether a database is on the machine afterwards, and of when.
timeout 120 cargo deny fetch db >/dev/null 2>&1 || true
db=$(compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-*" | head -1 || true)
if [ -n "$db" ] && [ -d "$db/crates" ]; then
  echo "deny: advisory database as of $(git -C "$db" log -1 --format=%cs 2>/dev/null || echo 'an unknown date')"
  cargo deny --offline check advisories
else
  echo "deny: advisories skipped: the RustSec advisory database cannot be fetched from this machine and no copy is on it"
fi
