#!/usr/bin/env bash
# Runs every side-by-side benchmark in one go and keeps what they printed.
#
#   ./scripts/bench.sh [--quick] [--criterion]
#
# Each benchmark measures our tool and its peer in the same run and prints the
# ratios (BENCHMARKS.md explains each figure). Output: churn-out/bench/<UTC time>/,
# one log per benchmark plus machine.txt (CPU, cores, memory, versions).
# --quick runs smaller sizes (a smoke run, not figures to quote); --criterion
# adds the criterion benches (a separate bench-profile build, ~15 min cold).
# Installs what it needs: the Python peers into .venv (requirements.txt), wrk
# from Debian's packages and oha from crates.io when they are missing.
# Run it on an otherwise idle machine: the figures are wall times.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
criterion=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --criterion) criterion=1 ;;
    *) echo "usage: $0 [--quick] [--criterion]" >&2; exit 2 ;;
  esac
done

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; else sudo apt-get install -y -q wrk >/dev/null; fi
fi
if ! command -v oha >/dev/null; then
  cargo install --quiet --locked oha
fi
# The binary the test command builds (same features, so no second build of polars).
cargo test --release --workspace --no-run --quiet
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export CHURN_BIN="$target_dir/release/churn"
# The Python package, built on that build (see python/Cargo.toml's workspace hack).
.venv/bin/python -m pip install --quiet --disable-pip-version-check ./python

out="churn-out/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "cores: $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "rustc: $(rustc --version)"
  echo "python: $(.venv/bin/python --version)"
  .venv/bin/python -c 'import lightgbm, sklearn, pandas, fastapi; print(f"lightgbm {lightgbm.__version__}, scikit-learn {sklearn.__version__}, pandas {pandas.__version__}, fastapi {fastapi.__version__}")'
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "oha: $(oha --version)"
} > "$out/machine.txt"
cat "$out/machine.txt"

run() {
  local name=$1
  shift
  echo
  echo "== $name: $*"
  local start=$(date +%s)
  "$@" 2>&1 | tee "$out/$name.log"
  echo "($name: $(( $(date +%s) - start )) s)" | tee -a "$out/$name.log"
}

if [ "$quick" = 1 ]; then
  run gbdt_vs_lightgbm .venv/bin/python benches/gbdt_vs_lightgbm.py --rows 100000
  run train_vs_lightgbm .venv/bin/python benches/train_vs_lightgbm.py --rows 100000 --repeat 1
  run features_vs_pandas .venv/bin/python benches/features_vs_pandas.py --learners 10000 --repeat 1 --work "$out/features-work"
  run serve_vs_fastapi .venv/bin/python benches/serve_vs_fastapi.py --seconds 5
  run import_vs_polars .venv/bin/python benches/import_vs_polars.py --rows 1000000 --repeat 1 --work "$out/import-work"
  run store_vs_raw .venv/bin/python benches/store_vs_raw.py --learners 5000 --seconds 3 --work "$out/store-work"
  run python_package .venv/bin/python benches/python_package.py --rows 100000 --explain-rows 500
  run spark_vs_cli .venv/bin/python benches/spark_vs_cli.py --data data
else
  run gbdt_vs_lightgbm .venv/bin/python benches/gbdt_vs_lightgbm.py
  run train_vs_lightgbm .venv/bin/python benches/train_vs_lightgbm.py
  run features_vs_pandas .venv/bin/python benches/features_vs_pandas.py
  # On the 100k-learner simulation features_vs_pandas has just made.
  run python_package .venv/bin/python benches/python_package.py --data /tmp/churn-bench-features/sim-100000-180
  run spark_vs_cli .venv/bin/python benches/spark_vs_cli.py --data /tmp/churn-bench-features/sim-100000-180
  run serve_vs_fastapi .venv/bin/python benches/serve_vs_fastapi.py --seconds 15
  run import_vs_polars .venv/bin/python benches/import_vs_polars.py
  run import_postgres_vs_psql .venv/bin/python benches/import_postgres_vs_psql.py
  run oulad_handmade .venv/bin/python benches/oulad_handmade.py --work "$out/oulad-work"
  run store_vs_raw .venv/bin/python benches/store_vs_raw.py --work "$out/store-work"
  run store_engines cargo bench -p churn-store --bench engines
fi
if [ "$criterion" = 1 ]; then
  run criterion_predict_shap cargo bench -p churn-gbdt --bench predict_shap
  run criterion_single_learner cargo bench -p churn-features --bench single_learner
fi
echo
echo "logs in $out"
