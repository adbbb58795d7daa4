//! The readout of an [`Analysis`] for people: the terminal summary and the
//! page written as `ab.html`.

use std::fmt::Write;

use crate::AbError;
use crate::policy_value::{Estimate, PolicyComparison};
use churn_html::{Cell, IntervalChart, IntervalRow, Legend, LineChart, Page, Series, Style};

use crate::analysis::Analysis;

fn pp(x: f64) -> String {
    format!("{:+.2}", 100.0 * x)
}

fn p_value(p: Option<f64>) -> String {
    p.map_or("–".into(), |p| format!("{p:.4}"))
}

/// The arms whose churn reduction survives Holm's correction.
fn working_arms(analysis: &Analysis) -> Vec<&str> {
    analysis
        .readout
        .comparisons
        .iter()
        .filter(|c| c.p_holm.is_some_and(|p| p < 0.05) && c.interval.1 < 0.0)
        .map(|c| c.arm.as_str())
        .collect()
}

/// For whom each arm works: the risk deciles whose interval lies below 0.
fn for_whom(analysis: &Analysis) -> Vec<String> {
    let Some(deciles) = &analysis.by_risk_decile else {
        return Vec::new();
    };
    analysis
        .readout
        .arms
        .iter()
        .skip(1)
        .enumerate()
        .filter_map(|(k, arm)| {
            let helped: Vec<String> = deciles
                .iter()
                .filter(|d| {
                    d.effects
                        .get(k)
                        .and_then(|e| e.interval)
                        .is_some_and(|i| i.1 < 0.0)
                })
                .map(|d| d.decile.to_string())
                .collect();
            (!helped.is_empty()).then(|| {
                format!(
                    "{} reduces churn in risk decile{} {} (of 10, riskiest = 10; 95% intervals not adjusted across deciles)",
                    arm.arm,
                    if helped.len() == 1 { "" } else { "s" },
                    helped.join(", ")
                )
            })
        })
        .collect()
}

fn srm_line(analysis: &Analysis) -> String {
    let srm = &analysis.readout.sample_ratio;
    let against = if srm.planned.is_empty() {
        format!(
            "statistic {:.2}, p {:.4} ({})",
            srm.chi2, srm.p_value, srm.method
        )
    } else {
        format!(
            "chi-square {:.2}, p {:.4} against the planned split {:?}",
            srm.chi2,
            srm.p_value,
            srm.planned
                .iter()
                .map(|s| (s * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        )
    };
    format!(
        "sample ratio: {against}{}",
        if srm.mismatch {
            "  ** MISMATCH (p < 0.001): the assignment did not follow the plan; do not trust the effects **"
        } else {
            "  (no mismatch)"
        }
    )
}

fn recommendation_line(p: &PolicyComparison) -> Option<String> {
    let best = &p.values[p.recommended?];
    let dr = best.net_value.dr;
    let mut line = format!(
        "recommended policy: {} — net value {:.2} per learner [{:.2}, {:.2}] (DR), churn {:.1}%, treats {:.0}% of learners\n  why: {}",
        best.name,
        dr.estimate,
        dr.low,
        dr.high,
        100.0 * best.churn.dr.estimate,
        100.0 * best.treated_share,
        p.reason
    );
    if let (
        Some(u),
        Some(Estimate {
            estimate,
            low,
            high,
        }),
    ) = (p.runner_up, p.advantage)
    {
        let verdict = if low > 0.0 {
            "ahead"
        } else {
            "not distinguishable with this data"
        };
        line.push_str(&format!(
            "\n  vs runner-up {}: {estimate:+.2} [{low:+.2}, {high:+.2}] per learner, {verdict}",
            p.values[u].name
        ));
    }
    Some(line)
}

/// The readout for a terminal, as text.
pub fn terminal(analysis: &Analysis, control: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_terminal(analysis, control, &mut out);
    out
}

fn write_terminal(analysis: &Analysis, control: &str, out: &mut String) -> std::fmt::Result {
    let a = analysis;
    writeln!(
        out,
        "experiment {} at {}: {} assigned = {} with a {}-day outcome + {} already gone at assignment + {} whose horizon runs past the data",
        a.experiment,
        a.assigned_at.join(", "),
        a.assigned,
        a.analysed,
        a.horizon_days,
        a.excluded["already_gone"],
        a.excluded["horizon_past_data"]
    )?;
    writeln!(
        out,
        "\n{:<22} {:>7} {:>8} {:>8}  95% interval",
        "arm", "n", "churned", "rate"
    )?;
    for arm in &a.readout.arms {
        writeln!(
            out,
            "{:<22} {:>7} {:>8} {:>7.1}%  [{:.1}%, {:.1}%]",
            arm.arm,
            arm.n,
            arm.churned,
            100.0 * arm.rate,
            100.0 * arm.interval.0,
            100.0 * arm.interval.1
        )?;
    }
    writeln!(
        out,
        "\nagainst {control}: difference in churn (negative = fewer churned)"
    )?;
    for c in &a.readout.comparisons {
        writeln!(
            out,
            "{:<22} {:>7} pp  [{}, {}]  relative {:+.1}%  p {}  Holm p {}{}",
            c.arm,
            pp(c.difference),
            pp(c.interval.0),
            pp(c.interval.1),
            100.0 * c.relative,
            p_value(c.p_value),
            p_value(c.p_holm),
            if c.p_holm.is_some_and(|p| p < 0.05) && c.interval.1 < 0.0 {
                "  ← reduces churn"
            } else {
                ""
            }
        )?;
    }
    if let Some((feature, rows)) = &a.cuped {
        writeln!(out, "\nCUPED on {feature}:")?;
        for c in rows {
            writeln!(
                out,
                "{:<22} {:>7} pp  [{}, {}]  p {:.4}  variance −{:.1}%",
                c.arm,
                pp(c.difference),
                pp(c.interval.0),
                pp(c.interval.1),
                c.p_value,
                100.0 * c.variance_reduction
            )?;
        }
    }
    writeln!(out, "\n{}", srm_line(a))?;
    if let (Some(deciles), Some(source)) = (&a.by_risk_decile, &a.risk_source) {
        writeln!(out, "\nby decile of {source} (difference vs control, pp):")?;
        write!(out, "{:<8} {:>13}", "decile", "risk")?;
        for name in a.readout.arms.iter().skip(1) {
            write!(out, "  {:>26}", name.arm)?;
        }
        writeln!(out)?;
        for d in deciles {
            write!(
                out,
                "{:<8} {:>5.3}–{:<7.3}",
                d.decile, d.risk_low, d.risk_high
            )?;
            for e in &d.effects {
                match (e.difference, e.interval) {
                    (Some(diff), Some((low, high))) => write!(
                        out,
                        "  {:>+7.1} [{:>+6.1}, {:>+6.1}]",
                        100.0 * diff,
                        100.0 * low,
                        100.0 * high
                    )?,
                    _ => write!(out, "  {:>26}", "–")?,
                }
            }
            writeln!(out)?;
        }
    }
    if !a.uplift.is_empty() {
        writeln!(
            out,
            "\nuplift models (T-learner, cross-fitted; uplift = churn reduction):"
        )?;
        writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>10} {:>10} {:>10}",
            "arm", "Qini", "AUUC", "uplift@10%", "uplift@30%", "mean pred"
        )?;
        for u in &a.uplift {
            writeln!(
                out,
                "{:<22} {:>8.4} {:>8.4} {:>10} {:>10} {:>10}",
                u.arm,
                u.qini_coefficient,
                u.auuc,
                pp(u.uplift_at_10),
                pp(u.uplift_at_30),
                pp(u.mean_predicted)
            )?;
        }
    }
    if let Some(p) = &a.policies {
        writeln!(
            out,
            "\npolicies (learner value {}, costs {}): net value per learner vs treating no one",
            a.learner_value,
            a.costs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(
            out,
            "{:<32} {:>8} {:>8} {:>24} {:>9} {:>9} {:>9}",
            "policy", "treated", "churn", "net value DR [95%]", "IPW", "SNIPW", "modelled"
        )?;
        for v in &p.values {
            let dr = v.net_value.dr;
            writeln!(
                out,
                "{:<32} {:>7.0}% {:>7.1}% {:>8.2} [{:>6.2}, {:>6.2}] {:>9.2} {:>9.2} {:>9.2}",
                v.name,
                100.0 * v.treated_share,
                100.0 * v.churn.dr.estimate,
                dr.estimate,
                dr.low,
                dr.high,
                v.net_value.ipw.estimate,
                v.net_value.snipw.estimate,
                v.modelled_net_value
            )?;
        }
        if let Some(line) = recommendation_line(p) {
            writeln!(out, "\n{line}")?;
        }
    }
    let working = working_arms(a);
    writeln!(
        out,
        "\nin short: {}; {}",
        if working.is_empty() {
            "no arm reduced churn significantly (Holm-adjusted)".to_owned()
        } else {
            format!(
                "{} reduced churn (Holm-adjusted p < 0.05)",
                working.join(", ")
            )
        },
        if a.readout.sample_ratio.mismatch {
            "SAMPLE RATIO MISMATCH"
        } else {
            "no sample ratio mismatch"
        }
    )?;
    for line in for_whom(a) {
        writeln!(out, "for whom: {line}")?;
    }
    for note in &a.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn row(name: &str, e: f64, low: f64, high: f64, highlight: bool) -> IntervalRow {
    IntervalRow {
        name: name.to_owned(),
        estimate: e,
        low,
        high,
        highlight,
    }
}

/// ab.html.
pub fn html(analysis: &Analysis, control: &str) -> Result<String, AbError> {
    let a = analysis;
    let mut page = Page::new(&format!("Experiment {}", a.experiment));
    page.note(&format!(
        "Assigned at {}: {} learners, {} with a {}-day outcome ({} already gone at assignment, {} whose horizon runs past the data).",
        a.assigned_at.join(", "),
        a.assigned,
        a.analysed,
        a.horizon_days,
        a.excluded["already_gone"],
        a.excluded["horizon_past_data"]
    ));
    let working = working_arms(a);
    page.note(&if working.is_empty() {
        "No arm reduced churn significantly after Holm's correction.".to_owned()
    } else {
        format!(
            "{} reduced churn (Holm-adjusted p < 0.05).",
            working.join(", ")
        )
    });
    for line in for_whom(a) {
        page.note(&format!("For whom: {line}."));
    }
    page.note(&srm_line(a));
    for note in &a.notes {
        page.note(note);
    }

    page.heading("Churn by arm");
    let rows: Vec<Vec<Cell>> = a
        .readout
        .arms
        .iter()
        .map(|r| {
            let c = a.readout.comparisons.iter().find(|c| c.arm == r.arm);
            vec![
                Cell::from(r.arm.as_str()),
                Cell::Number(r.n as f64, 0),
                Cell::Number(r.churned as f64, 0),
                Cell::Text(format!(
                    "{:.1}% [{:.1}, {:.1}]",
                    100.0 * r.rate,
                    100.0 * r.interval.0,
                    100.0 * r.interval.1
                )),
                Cell::Text(c.map_or("control".into(), |c| {
                    format!(
                        "{} pp [{}, {}]",
                        pp(c.difference),
                        pp(c.interval.0),
                        pp(c.interval.1)
                    )
                })),
                Cell::Text(c.map_or(String::new(), |c| p_value(c.p_value))),
                Cell::Text(c.map_or(String::new(), |c| p_value(c.p_holm))),
            ]
        })
        .collect();
    page.table(
        &[
            "arm",
            "n",
            "churned",
            "churn [Wilson 95%]",
            "vs control [Newcombe 95%]",
            "p (z-test)",
            "Holm p",
        ],
        &rows,
    );
    let control_rate = a.readout.arms.first().map(|r| r.rate);
    let arms_chart = IntervalChart {
        title: "Churn rate by arm (Wilson 95%)".into(),
        x_label: "churn rate".into(),
        rows: a
            .readout
            .arms
            .iter()
            .map(|r| {
                row(
                    &r.arm,
                    r.rate,
                    r.interval.0,
                    r.interval.1,
                    working.contains(&r.arm.as_str()),
                )
            })
            .collect(),
        reference: control_rate,
        style: Style::default(),
    }
    .svg()?;
    let effects_chart = IntervalChart {
        title: format!("Difference in churn vs {control} (Newcombe 95%)"),
        x_label: "treated − control churn (negative = fewer churned)".into(),
        rows: a
            .readout
            .comparisons
            .iter()
            .map(|c| {
                row(
                    &c.arm,
                    c.difference,
                    c.interval.0,
                    c.interval.1,
                    working.contains(&c.arm.as_str()),
                )
            })
            .collect(),
        reference: Some(0.0),
        style: Style::default(),
    }
    .svg()?;
    page.charts(&[
        (
            arms_chart,
            "Dashed: the control rate. Orange: arms that reduce churn after Holm's correction.",
        ),
        (
            effects_chart,
            "Left of the dashed line: fewer churned than control.",
        ),
    ]);
    if let Some((feature, rows)) = &a.cuped {
        page.heading(&format!("CUPED on {feature}"));
        let rows: Vec<Vec<Cell>> = rows
            .iter()
            .map(|c| {
                vec![
                    Cell::from(c.arm.as_str()),
                    Cell::Text(format!(
                        "{} pp [{}, {}]",
                        pp(c.difference),
                        pp(c.interval.0),
                        pp(c.interval.1)
                    )),
                    Cell::Number(c.p_value, 4),
                    Cell::Number(c.theta, 5),
                    Cell::Text(format!("{:.1}%", 100.0 * c.variance_reduction)),
                ]
            })
            .collect();
        page.table(
            &[
                "arm",
                "adjusted difference [95%]",
                "p",
                "θ",
                "variance reduction",
            ],
            &rows,
        );
    }

    if let (Some(deciles), Some(source)) = (&a.by_risk_decile, &a.risk_source) {
        page.heading("Who it helps: effect by risk decile");
        page.note(&format!("Deciles of {source}; difference in churn vs {control} within each decile (Newcombe 95%)."));
        let mut charts = Vec::new();
        for (k, arm) in a.readout.arms.iter().skip(1).enumerate() {
            let rows: Vec<IntervalRow> = deciles
                .iter()
                .filter_map(|d| {
                    let e = d.effects.get(k)?;
                    let (diff, (low, high)) = (e.difference?, e.interval?);
                    Some(row(
                        &format!("decile {} ({:.2}–{:.2})", d.decile, d.risk_low, d.risk_high),
                        diff,
                        low,
                        high,
                        high < 0.0,
                    ))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let chart = IntervalChart {
                title: format!("{} vs {control}", arm.arm),
                x_label: "difference in churn".into(),
                rows,
                reference: Some(0.0),
                style: Style::default(),
            }
            .svg()?;
            charts.push((chart, "Orange: deciles where the interval lies below 0."));
        }
        page.charts(&charts);
    }

    if !a.uplift.is_empty() {
        page.heading("Uplift models");
        page.note("A T-learner per treated arm on churn-gbdt, cross-fitted in 5 folds so that no learner is scored by a model that saw it. Uplift = churn reduction (control − treated). Qini coefficient and AUUC as scikit-uplift defines them (0 = random targeting, 1 = perfect).");
        let rows: Vec<Vec<Cell>> = a
            .uplift
            .iter()
            .map(|u| {
                vec![
                    Cell::from(u.arm.as_str()),
                    Cell::Number(u.learners as f64, 0),
                    Cell::Number(u.qini_coefficient, 4),
                    Cell::Number(u.auuc, 4),
                    Cell::Text(format!("{} pp", pp(u.uplift_at_10))),
                    Cell::Text(format!("{} pp", pp(u.uplift_at_30))),
                    Cell::Text(format!("{} pp", pp(u.mean_predicted))),
                ]
            })
            .collect();
        page.table(
            &[
                "arm",
                "learners (arm + control)",
                "Qini coefficient",
                "AUUC",
                "uplift@10%",
                "uplift@30%",
                "mean predicted uplift",
            ],
            &rows,
        );
        let series: Vec<Series> = a
            .uplift
            .iter()
            .map(|u| {
                let n = u.qini.x.last().copied().unwrap_or(1.0).max(1.0);
                Series {
                    name: format!("{} (Qini {:.3})", u.arm, u.qini_coefficient),
                    points: u
                        .qini
                        .x
                        .iter()
                        .zip(&u.qini.y)
                        .map(|(x, y)| (x / n, *y / n))
                        .collect(),
                    markers: false,
                }
            })
            .collect();
        let (low, high) = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold((0.0_f64, 0.0_f64), |(l, h), y| (l.min(y), h.max(y)));
        let pad = ((high - low) * 0.08).max(1e-3);
        let qini = LineChart {
            title: "Qini curves (learners retained by treating the top share, per learner)".into(),
            x_label: "share targeted, highest predicted uplift first".into(),
            y_label: "incremental retained / learners".into(),
            x_range: (0.0, 1.0),
            y_range: (low - pad, high + pad),
            series,
            reference: None,
            legend: Legend::LowerRight,
            style: Style::default(),
        }
        .svg()?;
        page.charts(&[(
            qini,
            "Above 0: targeting by predicted uplift retains more than treating at random.",
        )]);
    }

    if let Some(p) = &a.policies {
        page.heading("Which policy to roll out");
        page.note(&format!(
            "Net value per learner against treating no one = churn prevented × learner value ({}) − treatment cost ({}). Churn by inverse propensity weighting (IPW), self-normalised IPW and doubly robust (DR, with the cross-fitted uplift models) on the logged propensities; 95% bootstrap intervals resample learners (no refitting), paired across policies. The modelled net value is the uplift models' own expectation. The recommendation is the models' favourite unless another policy beats it significantly by DR.",
            a.learner_value,
            a.costs
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some(line) = recommendation_line(p) {
            page.note(&line);
        }
        let rows: Vec<Vec<Cell>> = p
            .values
            .iter()
            .map(|v| {
                let e = |x: Estimate, scale: f64, digits: usize| {
                    format!(
                        "{:.d$} [{:.d$}, {:.d$}]",
                        scale * x.estimate,
                        scale * x.low,
                        scale * x.high,
                        d = digits
                    )
                };
                vec![
                    Cell::from(v.name.as_str()),
                    Cell::Text(format!("{:.0}%", 100.0 * v.treated_share)),
                    Cell::Number(v.cost_per_learner, 2),
                    Cell::Text(e(v.churn.dr, 100.0, 1)),
                    Cell::Text(e(v.net_value.dr, 1.0, 2)),
                    Cell::Text(e(v.net_value.ipw, 1.0, 2)),
                    Cell::Text(e(v.net_value.snipw, 1.0, 2)),
                    Cell::Number(v.modelled_net_value, 2),
                ]
            })
            .collect();
        page.table(
            &[
                "policy",
                "treated",
                "cost / learner",
                "churn % (DR)",
                "net value (DR)",
                "net value (IPW)",
                "net value (SNIPW)",
                "modelled net value",
            ],
            &rows,
        );
        let chart = IntervalChart {
            title: "Net value per learner vs treating no one (DR, 95%)".into(),
            x_label: "net value per learner".into(),
            rows: p
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let dr = v.net_value.dr;
                    row(
                        &v.name,
                        dr.estimate,
                        dr.low,
                        dr.high,
                        Some(i) == p.recommended,
                    )
                })
                .collect(),
            reference: Some(0.0),
            style: Style {
                height: (80 + 28 * p.values.len()) as u32,
                ..Style::default()
            },
        }
        .svg()?;
        page.charts(&[(chart, "Orange: the recommended policy.")]);
    }
    Ok(page.finish())
}
