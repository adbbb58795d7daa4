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

cargo test --release --workspace
# The Python tests run the binary the Rust tests just built (same features, no rebuild).
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
CHURN_BIN="$target_dir/release/churn" .venv/bin/python -m pytest -q tests/python
