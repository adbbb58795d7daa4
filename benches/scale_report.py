"""The table and the chart of benches/scale.sh: wall time and peak memory of
each step against the number of events, and the two goals of the scale work
(simulate within the budget at the largest size; features out of core within
the budget, at most 1.3x the in-memory time per event where both ran).

    python benches/scale_report.py results.tsv scale.png 2GiB
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def bytes_of(text: str) -> int:
    for unit, size in sorted(UNITS.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * size)
    return int(text)


def main(results: str, chart: str, budget_text: str) -> None:
    budget_mib = bytes_of(budget_text) / 2**20
    rows = pl.read_csv(results, separator="\t")
    rows = rows.with_columns(
        (pl.col("seconds") / pl.col("events") * 1e6).alias("us_per_event"),
        (pl.col("step") + " " + pl.col("mode").str.replace_all("_", " ")).alias("what"),
    )
    print("| learners | events | step | mode | wall (s) | peak RSS (MiB) | µs/event | status |")
    print("|---:|---:|---|---|---:|---:|---:|---|")
    for r in rows.iter_rows(named=True):
        print(
            f"| {r['learners']:,} | {r['events']:,} | {r['step']} | {r['mode'].replace('_', ' ')} "
            f"| {r['seconds']:.1f} | {r['peak_rss_mib']:,} | {r['us_per_event']:.3f} | {r['status']} |"
        )
    print()

    largest = rows["learners"].max()
    sim = rows.filter((pl.col("step") == "simulate") & (pl.col("learners") == largest))
    if sim.height:
        mib = sim["peak_rss_mib"][0]
        verdict = "met" if mib <= budget_mib else "NOT met"
        print(f"- simulate {largest:,} learners: peak {mib:,} MiB against a budget of {budget_text}: {verdict}")
    feats = rows.filter(pl.col("step") == "features")
    ooc = feats.filter(pl.col("mode") == "out_of_core")
    for r in ooc.iter_rows(named=True):
        verdict = "within" if r["peak_rss_mib"] <= budget_mib else "OVER"
        print(
            f"- features out of core, {r['learners']:,} learners: peak {r['peak_rss_mib']:,} MiB, {verdict} {budget_text}"
        )
    both = ooc.join(
        feats.filter((pl.col("mode") == "in_memory") & (pl.col("status") == "ok")),
        on="learners",
        suffix="_mem",
    )
    for r in both.iter_rows(named=True):
        ratio = r["us_per_event"] / r["us_per_event_mem"]
        verdict = "met" if ratio <= 1.3 else "NOT met"
        print(
            f"- features at {r['learners']:,} learners: out of core {r['seconds']:.1f} s / "
            f"{r['peak_rss_mib']:,} MiB vs in memory {r['seconds_mem']:.1f} s / {r['peak_rss_mib_mem']:,} MiB: "
            f"{ratio:.2f}x the in-memory time per event (goal at most 1.3x: {verdict})"
        )

    fig, (time_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for what, part in rows.sort("events").group_by("what", maintain_order=True):
        part = part.filter(pl.col("status") == "ok")
        millions = part["events"] / 1e6
        time_ax.plot(millions, part["seconds"], marker="o", label=what[0])
        rss_ax.plot(millions, part["peak_rss_mib"] / 1024, marker="o", label=what[0])
    time_ax.set(xlabel="events (millions)", ylabel="wall time (s)", title="Wall time")
    rss_ax.axhline(budget_mib / 1024, color="grey", linestyle="--", label=f"budget {budget_text}")
    rss_ax.set(xlabel="events (millions)", ylabel="peak RSS (GiB)", title="Peak memory")
    for ax in (time_ax, rss_ax):
        ax.grid(alpha=0.3)
    rss_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:4])
