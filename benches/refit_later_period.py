"""Issue 21's check of the refit, on a simulation with a later period no model saw.

Simulates a platform for 240 days, hides everything after day 180 from training
(`--now` rejects later rows, so the data end there), trains the shipped artifact
two ways (refitted on every labelled example, and `--no-refit`: fitted on the
newest fold's training rows only), then scores both on the as-of times of the
hidden months with `churn evaluate` on the full history. Prints, per family, the
later-period AUC of each artifact and the card's estimate with its intervals
(the newest fold's bootstrap interval, and mean ± 1.96 sd over folds): for the
refit, the refit procedure's backtest (`metrics.refit.estimate`,
`metrics.backtest.refit_procedure`); for --no-refit, the fold models'.

    python benches/refit_later_period.py [--learners 50000] [--seed 11]
    python benches/refit_later_period.py --data data --cutoff 2026-05-20T00:00:00Z \
        --later-from 2026-05-20T00:00:00Z --every 7d      # the committed sample
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from churn_run import churn_bin, run  # noqa: E402
CUTOFF = "2026-06-30T00:00:00Z"  # day 180 of a simulation starting 2026-01-01
LATER_FROM = "2026-07-14T00:00:00Z"


def card(models: Path, name: str) -> dict:
    (version,) = [d for d in (models / name).iterdir() if d.is_dir()]
    return json.loads((version / "model.json").read_text())


def later_auc(models: Path, name: str, data: Path, work: Path, later_from: str, every: str) -> tuple[float, int]:
    out = run(
        "evaluate", "--model", name, "--models", str(models), "--data", str(data),
        "--from", later_from, "--every", every, "--work", str(work),
    )
    report = json.loads(out[out.index("{"):])
    overall = report["overall"] if "overall" in report else report
    return overall["roc_auc"]["estimate"], overall["rows"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data", type=Path, help="an existing data directory instead of a simulation")
    parser.add_argument("--cutoff", default=CUTOFF, help="training sees nothing after this time")
    parser.add_argument("--later-from", default=LATER_FROM, help="the first as-of time scored")
    parser.add_argument("--every", default="14d", help="as-of spacing, in training and scoring")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data.resolve() if args.data else tmp / "data"
        if not args.data:
            run("simulate", "--learners", str(args.learners), "--days", "240",
                "--seed", str(args.seed), "--out", str(data))
        rows = []
        for refit in (True, False):
            models = tmp / ("refit" if refit else "no-refit")
            extra = [] if refit else ["--no-refit"]
            run("train", "--data", str(data), "--now", args.cutoff, "--every", args.every, "--out", str(models),
                "--work", str(tmp / "work"), "--seed", str(args.seed), *extra)
            for family in ("gbdt", "logistic"):
                name = f"churn-{family}"
                c = card(models, name)
                auc, n = later_auc(models, name, data, tmp / "evaluate", args.later_from, args.every)
                bt = c["metrics"].get("backtest", {})
                # The refit's estimate is the refit procedure on the newest
                # fold; a --no-refit artifact's is its split's test.
                test = c["metrics"].get("refit", {}).get("estimate", c["metrics"]["test"])["roc_auc"]
                folds = len(bt.get("folds", []))
                if refit:
                    bt = bt.get("refit_procedure", bt)
                mean, sd = bt.get("roc_auc", {}).get("mean"), bt.get("roc_auc", {}).get("sd")
                rows.append({
                    "family": family, "artifact": "refit" if refit else "newest fold",
                    "later_auc": auc, "later_rows": n,
                    "card_estimate": mean, "card_sd": sd,
                    "newest_fold": [test["estimate"], test["low"], test["high"]],
                    "folds": folds,
                    "within_fold_interval": test["low"] <= auc <= test["high"],
                    "within_mean_1.96sd": None if sd is None or mean is None else abs(auc - mean) <= 1.96 * sd,
                })
        source = args.data if args.data else f"{args.learners} learners x 240 days (seed {args.seed})"
        print(f"{source}: trained on data up to {args.cutoff}, as-of every {args.every}; later period: as-of {args.later_from} on")
        print("| family | artifact | later-period AUC | rows | card: backtest mean ± sd | card: newest fold [95%] | later within fold interval | within mean ± 1.96 sd |")
        print("|---|---|---:|---:|---|---|---|---|")
        for r in rows:
            f = r["newest_fold"]
            estimate = ("(no backtest: one fold)" if r["card_estimate"] is None
                        else f"{r['card_estimate']:.4f} ± {r['card_sd']:.4f} ({r['folds']} folds)")
            print(f"| {r['family']} | {r['artifact']} | {r['later_auc']:.4f} | {r['later_rows']:,} | "
                  f"{estimate} | {f[0]:.4f} [{f[1]:.4f}, {f[2]:.4f}] | "
                  f"{r['within_fold_interval']} | {r['within_mean_1.96sd']} |")
        for family in ("gbdt", "logistic"):
            refit, old = [r for r in rows if r["family"] == family]
            print(f"- {family}: refit {refit['later_auc']:.4f} vs newest-fold artifact {old['later_auc']:.4f} "
                  f"({refit['later_auc'] - old['later_auc']:+.4f})")
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
