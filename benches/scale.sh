#!/usr/bin/env bash
# Scale on one machine: wall time and peak memory (RSS) of simulate, features
# (in memory and out of core), train and predict at 100k, 400k and 1M learners
# × 180 days (≈ 11M, 45M and 113M events), then a table and a chart.
#
#   benches/scale.sh [--quick] [--keep] [--budget 2GiB]
#
# --quick runs 20k and 50k learners (a smoke run, not figures to quote);
# --keep keeps the simulated data (1M learners: ~1.3 GB) under the work
# directory; --budget is the --memory of the out-of-core steps.
# Output: churn-out/scale/<UTC time>/ with results.tsv, one log per step,
# scale.png and summary.md (the figures BENCHMARKS.md quotes).
# Run it on an otherwise idle machine: the figures are wall times.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="100000 400000 1000000"
keep=0
budget=2GiB
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) sizes="20000 50000" ;;
    --keep) keep=1 ;;
    --budget) budget=$2; shift ;;
    *) echo "usage: $0 [--quick] [--keep] [--budget SIZE]" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "${CHURN_BIN:-}" ]; then
  # The binary the test command builds (same features, no second build of polars).
  cargo test --release --workspace --no-run --quiet
  CHURN_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/churn"
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

out="churn-out/scale/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
results="$out/results.tsv"
printf 'learners\tevents\tstep\tmode\tseconds\tpeak_rss_mib\tstatus\n' > "$results"
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "budget of the out-of-core steps: $budget"
} | tee "$out/machine.txt"

# measure LEARNERS EVENTS STEP MODE command...: one row of results.tsv.
measure() {
  local learners=$1 events=$2 step=$3 mode=$4
  shift 4
  local log="$out/$step-$mode-$learners.log" status=ok
  if ! /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" > "$log" 2>&1; then
    status=failed
  fi
  local seconds kib
  read -r seconds kib < <(tail -1 "$out/time.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$learners" "$events" "$step" "$mode" "$seconds" \
    "$((kib / 1024))" "$status" | tee -a "$results"
}

for n in $sizes; do
  data="$out/data-$n"
  measure "$n" 0 simulate streaming "$CHURN_BIN" --quiet simulate --learners "$n" --days 180 --seed 7 --out "$data"
  events=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["events"])' "$data/truth.json")
  sed -i "s/^$n\t0\tsimulate/$n\t$events\tsimulate/" "$results"
  measure "$n" "$events" features in_memory "$CHURN_BIN" --quiet features --data "$data" --out "$out/features-$n/in_memory.parquet"
  measure "$n" "$events" features out_of_core "$CHURN_BIN" --quiet features --data "$data" --out "$out/features-$n/out_of_core.parquet" --memory "$budget"
  rm -rf "$out/features-$n"
  measure "$n" "$events" train out_of_core "$CHURN_BIN" --quiet train --data "$data" --kind gbdt --name scale \
    --out "$out/models-$n" --work "$out/train-$n" --memory "$budget"
  measure "$n" "$events" predict in_memory "$CHURN_BIN" --quiet predict --model scale --models "$out/models-$n" \
    --data "$data" --work "$out/predict-$n" --out "$out/predict-$n/in_memory.csv"
  measure "$n" "$events" predict out_of_core "$CHURN_BIN" --quiet predict --model scale --models "$out/models-$n" \
    --data "$data" --work "$out/predict-$n" --out "$out/predict-$n/out_of_core.csv" --memory "$budget"
  if ! cmp -s "$out/predict-$n/in_memory.csv" "$out/predict-$n/out_of_core.csv"; then
    echo "predictions differ in and out of core at $n learners" | tee -a "$out/machine.txt"
  fi
  rm -rf "$out/predict-$n" "$out/train-$n" "$out/models-$n"
  if [ "$keep" = 0 ]; then rm -rf "$data"; fi
done
rm -f "$out/time.txt"

.venv/bin/python benches/scale_report.py "$results" "$out/scale.png" "$budget" | tee "$out/summary.md"
echo "results in $out"
