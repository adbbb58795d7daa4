#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need by itself:
# a Python virtualenv in .venv with requirements.txt (pandas, pytest, ...).
# Everything builds once, in the release profile that `cargo run --release` uses.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

# The PostgreSQL import test starts a real server with initdb + pg_ctl from
# Debian's postgresql package: install it when missing (as root), else that
# test prints why it was skipped.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || echo "could not install postgresql: the PostgreSQL import test will say SKIPPED"
  else
    echo "postgresql is not installed and cannot be installed here: the PostgreSQL import test will say SKIPPED"
  fi
fi

cargo test --release --workspace
# The Python package, as a user installs it (maturin builds the extension in
# the same target directory; python/Cargo.toml's workspace hack makes it reuse
# the test build's crates instead of compiling polars again).
.venv/bin/python -m pip install --quiet --disable-pip-version-check ./python
# The Python tests run the binary the Rust tests just built (same features, no rebuild).
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
CHURN_BIN="$target_dir/release/churn" .venv/bin/python -m pytest -q -rs tests/python python/tests
