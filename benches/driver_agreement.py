"""Do the explanations name the true cause? Agreement of top-3 factors with
the simulator's dominant churn driver.

The simulator writes, for every learner assigned at the experiment, the
driver that pushed their churn log-odds the most at that moment
(`dominant_driver` in truth_learners.csv). `churn predict --as-of <assignment
time>` gives each learner's top-3 factors. A factor "names" a driver when it
is one of the features of that driver's signal in the playbook (the playbook
is the one place that maps features to signals).

    python benches/driver_agreement.py --predictions pred.csv \
        --truth sim/truth_learners.csv [--playbook playbook.toml] [--min-push 1.0]

Prints, per driver: learners, share whose top-3 factors include a feature of
that signal, and share whose suggested action is the signal's intervention.
`--min-push` keeps the learners whose dominant push is at least that many
log-odds (a dominant driver of 0.1 log-odds is not a cause worth naming).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import pandas as pd


def agreement(predictions: Path, truth: Path, playbook: Path, min_push: float, top_k: int = 3) -> dict:
    plays = tomllib.loads(playbook.read_text())["play"]
    signals = {p["signal"]: (set(p["features"]), p["action"]) for p in plays}
    pred = pd.read_csv(predictions, dtype={"learner_id": str})
    true = pd.read_csv(truth, dtype={"learner_id": str})
    true = true[true["dominant_driver"].notna()]
    joined = pred.merge(true, on="learner_id", how="inner")
    factor_columns = [f"factor_{k}_feature" for k in range(1, top_k + 1)]
    out = {}
    for signal, (features, action) in signals.items():
        rows = joined[joined["dominant_driver"] == signal]
        rows = rows[rows[f"driver_{signal}"] >= min_push]
        if rows.empty:
            continue
        named = rows[factor_columns].isin(features).any(axis=1)
        at_risk = rows[rows["risk_band"] != "low"]
        out[signal] = {
            "learners": int(len(rows)),
            "top3_agreement": float(named.mean()),
            "at_risk": int(len(at_risk)),
            "action_agreement_at_risk": float((at_risk["action"] == action).mean()) if len(at_risk) else None,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--playbook", type=Path, default=Path(__file__).resolve().parent.parent / "playbook.toml")
    parser.add_argument("--min-push", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = agreement(args.predictions, args.truth, args.playbook, args.min_push)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'driver':<16} {'learners':>8} {'top-3 names it':>15} {'at risk':>8} {'action matches':>15}")
    for signal, r in result.items():
        action = "" if r["action_agreement_at_risk"] is None else f"{100 * r['action_agreement_at_risk']:.1f}%"
        print(f"{signal:<16} {r['learners']:>8} {100 * r['top3_agreement']:>14.1f}% {r['at_risk']:>8} {action:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
