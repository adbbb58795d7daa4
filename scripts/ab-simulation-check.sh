#!/usr/bin/env bash
# The larger simulator checks of churn ab, beyond the sizes CI runs:
#   R experiments for bias and interval coverage (IPW, SNIPW, Newcombe, the
#   sample-ratio check) and P experiments for the policy recommendation and
#   DR coverage. Usage: scripts/ab-simulation-check.sh [R=500] [P=100]
# Takes about 10 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
CHURN_AB_EXPERIMENTS="${1:-500}" cargo test --release -p churn-ab --test simulated -- \
    --nocapture --skip the_recommended
CHURN_AB_POLICY_EXPERIMENTS="${2:-100}" cargo test --release -p churn-ab --test simulated \
    the_recommended -- --nocapture
