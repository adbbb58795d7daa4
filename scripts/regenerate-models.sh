#!/usr/bin/env bash
# Regenerates models/ from the committed sample: the gbdt and logistic models
# (with their cards and training report) that `churn serve` loads right after
# cloning. tests/cli.rs retrains and checks that model.bin is reproduced byte
# for byte with 1 and 2 threads, so run this after any change that moves the
# model bytes (features, fitting, artifact format) and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/churn"
rm -rf models
"$bin" --quiet train --data data --kind both --name churn --out models --seed 42 \
    --work churn-out/regenerate-models
ls models/*/*
