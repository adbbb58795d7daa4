//! Every statistic against statsmodels / scipy on committed fixtures
//! (`fixtures/make_fixtures.py`).

use churn_ab::stats;
use serde_json::Value;

fn fixtures() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stats.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures/stats.json"))
        .expect("JSON")
}

fn close(ours: f64, theirs: &Value, tolerance: f64, what: &str) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number"));
    assert!(
        (ours - theirs).abs() <= tolerance * theirs.abs().max(1.0),
        "{what}: ours {ours} statsmodels {theirs}"
    );
}

#[test]
fn wilson_newcombe_and_z_test_match_statsmodels() {
    let f = fixtures();
    let cases = f["proportions"].as_array().expect("cases");
    assert!(cases.len() >= 90);
    let mut z_tests = 0;
    for c in cases {
        let n = |k: &str| c[k].as_u64().expect("count");
        let (k1, n1, k0, n0) = (n("k1"), n("n1"), n("k0"), n("n0"));
        let alpha = c["alpha"].as_f64().expect("alpha");
        let at = format!("{k1}/{n1} vs {k0}/{n0} at {alpha}");
        let w = stats::wilson(k1, n1, alpha).expect("wilson");
        close(w.low, &c["wilson"][0], 1e-9, &format!("wilson low {at}"));
        close(w.high, &c["wilson"][1], 1e-9, &format!("wilson high {at}"));
        let d = stats::newcombe(k1, n1, k0, n0, alpha).expect("newcombe");
        close(
            d.low,
            &c["newcombe"][0],
            1e-9,
            &format!("newcombe low {at}"),
        );
        close(
            d.high,
            &c["newcombe"][1],
            1e-9,
            &format!("newcombe high {at}"),
        );
        match (
            stats::two_proportion_z(k1, n1, k0, n0).expect("z"),
            c.get("z"),
        ) {
            (Some(t), Some(z)) => {
                close(t.statistic, &z[0], 1e-9, &format!("z {at}"));
                close(t.p_value, &z[1], 1e-9, &format!("p {at}"));
                z_tests += 1;
            }
            (None, None) => {}
            (ours, theirs) => panic!("{at}: ours {ours:?}, statsmodels {theirs:?}"),
        }
    }
    assert!(z_tests >= 80);
}

#[test]
fn holm_srm_and_planning_match_statsmodels_and_scipy() {
    let f = fixtures();
    for c in f["holm"].as_array().expect("holm") {
        let p: Vec<f64> = c["p"]
            .as_array()
            .expect("p")
            .iter()
            .map(|v| v.as_f64().expect("p"))
            .collect();
        let ours = stats::holm(&p).expect("holm");
        for (i, value) in ours.iter().enumerate() {
            close(*value, &c["adjusted"][i], 1e-12, "holm");
        }
    }
    for c in f["srm"].as_array().expect("srm") {
        let observed: Vec<u64> = c["observed"]
            .as_array()
            .expect("o")
            .iter()
            .map(|v| v.as_u64().expect("o"))
            .collect();
        let planned: Vec<f64> = c["planned"]
            .as_array()
            .expect("s")
            .iter()
            .map(|v| v.as_f64().expect("s"))
            .collect();
        let t = stats::sample_ratio_mismatch(&observed, &planned).expect("srm");
        close(t.statistic, &c["chi2"], 1e-9, "srm chi2");
        close(t.p_value, &c["p"], 1e-9, "srm p");
    }
    for c in f["plan"].as_array().expect("plan") {
        let g = |k: &str| c[k].as_f64().expect("number");
        let arms = c["arms"].as_u64().expect("arms") as usize;
        close(
            stats::cohens_h(g("baseline"), g("baseline") - g("mde")),
            &c["h"],
            1e-12,
            "cohen's h",
        );
        let n =
            stats::learners_per_arm(g("baseline"), g("mde"), 0.05, g("power"), arms).expect("plan");
        // statsmodels solves with brentq to its default tolerance.
        close(n, &c["n"], 1e-6, "learners per arm");
    }
}

#[test]
fn ipw_snipw_and_dr_match_direct_numpy_formulas() {
    use churn_ab::policy_value::{Bootstrap, Estimator, Logged, policy_churn};
    let f = fixtures();
    let v = &f["policy_value"];
    let numbers = |key: &str| -> Vec<f64> {
        v[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|x| x.as_f64().expect(key))
            .collect()
    };
    let arms = v["arms"].as_u64().expect("arms") as usize;
    let arm = numbers("arm");
    let propensity = numbers("propensity");
    let churned = numbers("churned");
    let log: Vec<Logged> = (0..arm.len())
        .map(|i| Logged {
            arm: arm[i] as usize,
            propensity: propensity[i],
            churned: churned[i] == 1.0,
        })
        .collect();
    let target: Vec<usize> = numbers("target").iter().map(|&a| a as usize).collect();
    let outcome = numbers("outcome");
    let bootstrap = Bootstrap {
        alpha: 0.05,
        resamples: 400,
        seed: 3,
    };
    for (estimator, key) in [
        (Estimator::Ipw, "ipw"),
        (Estimator::SelfNormalisedIpw, "snipw"),
        (Estimator::DoublyRobust, "dr"),
    ] {
        let value = policy_churn(&log, &target, arms, Some(&outcome), estimator, bootstrap)
            .expect("estimate");
        close(value.estimate, &v[key], 1e-12, key);
        assert!(
            value.interval.low < value.estimate && value.estimate < value.interval.high,
            "{key}: {value:?}"
        );
        let again = policy_churn(&log, &target, arms, Some(&outcome), estimator, bootstrap)
            .expect("estimate");
        assert_eq!(value, again, "{key}: the seed fixes the interval");
    }
}

fn numbers(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("{key}")))
        .collect()
}

#[test]
fn qini_auuc_and_uplift_at_k_match_scikit_uplift() {
    use churn_ab::uplift::{Scored, auuc, qini_coefficient, qini_curve, uplift_at_k, uplift_curve};
    let f = fixtures();
    let cases = f["uplift"].as_array().expect("uplift cases");
    assert!(cases.len() >= 5);
    for (c, case) in cases.iter().enumerate() {
        let (score, treated, churned) = (
            numbers(case, "score"),
            numbers(case, "treated"),
            numbers(case, "churned"),
        );
        let samples: Vec<Scored> = (0..score.len())
            .map(|i| Scored {
                uplift: score[i],
                treated: treated[i] == 1.0,
                retained: churned[i] == 0.0,
            })
            .collect();
        let qini = qini_curve(&samples).expect("qini curve");
        let uplift = uplift_curve(&samples).expect("uplift curve");
        for (ours, x_key, y_key) in [
            (&qini, "qini_x", "qini_y"),
            (&uplift, "uplift_x", "uplift_y"),
        ] {
            let (x, y) = (numbers(case, x_key), numbers(case, y_key));
            assert_eq!(ours.x, x, "case {c}: {x_key}");
            assert_eq!(ours.y.len(), y.len(), "case {c}: {y_key}");
            for (i, (a, b)) in ours.y.iter().zip(&y).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "case {c}: {y_key}[{i}] ours {a} sklift {b}"
                );
            }
        }
        close(
            qini_coefficient(&samples).expect("qini"),
            &case["qini_coefficient"],
            1e-9,
            "qini coefficient",
        );
        close(auuc(&samples).expect("auuc"), &case["auuc"], 1e-9, "auuc");
        for at in case["at_k"].as_array().expect("at_k") {
            let k = at["k"].as_f64().expect("k");
            let by_group = at["strategy"] == "by_group";
            let ours = uplift_at_k(&samples, k, by_group).expect("uplift at k");
            close(
                ours,
                &at["value"],
                1e-9,
                &format!("case {c}: uplift at {k} ({})", at["strategy"]),
            );
        }
    }
}

#[test]
fn cuped_matches_its_numpy_formula() {
    let f = fixtures();
    for (c, case) in f["cuped"].as_array().expect("cuped").iter().enumerate() {
        let (y1, x1, y0, x0) = (
            numbers(case, "y1"),
            numbers(case, "x1"),
            numbers(case, "y0"),
            numbers(case, "x0"),
        );
        let ours = stats::cuped((&y1, &x1), (&y0, &x0), 0.05).expect("cuped");
        close(
            ours.theta,
            &case["theta"],
            1e-9,
            &format!("case {c}: theta"),
        );
        close(
            ours.difference,
            &case["difference"],
            1e-9,
            &format!("case {c}: difference"),
        );
        close(
            ours.interval.low,
            &case["interval"][0],
            1e-9,
            &format!("case {c}: low"),
        );
        close(
            ours.interval.high,
            &case["interval"][1],
            1e-9,
            &format!("case {c}: high"),
        );
        close(ours.p_value, &case["p"], 1e-9, &format!("case {c}: p"));
        close(
            ours.variance_reduction,
            &case["variance_reduction"],
            1e-9,
            &format!("case {c}: variance reduction"),
        );
    }
}

#[test]
fn net_values_match_direct_numpy_formulas() {
    use churn_ab::policy_value::{Bootstrap, Candidate, Economics, Logged, compare};
    let f = fixtures();
    let v = &f["policy_value"];
    let (arm, propensity, churned) = (
        numbers(v, "arm"),
        numbers(v, "propensity"),
        numbers(v, "churned"),
    );
    let log: Vec<Logged> = (0..arm.len())
        .map(|i| Logged {
            arm: arm[i] as usize,
            propensity: propensity[i],
            churned: churned[i] == 1.0,
        })
        .collect();
    let candidate = Candidate {
        name: "target".into(),
        choices: numbers(v, "target").iter().map(|&a| a as usize).collect(),
        rule: None,
    };
    let economics = Economics {
        learner_value: v["learner_value"].as_f64().expect("value"),
        costs: numbers(v, "costs"),
    };
    let bootstrap = Bootstrap {
        alpha: 0.05,
        resamples: 200,
        seed: 9,
    };
    let arms = v["arms"].as_u64().expect("arms") as usize;
    let comparison = compare(
        &log,
        &[candidate],
        arms,
        &numbers(v, "outcome"),
        &economics,
        bootstrap,
    )
    .expect("compare");
    let values = &comparison.values;
    assert_eq!(values[0].name, "treat_none");
    let none = &values[0].net_value;
    for e in [none.ipw, none.snipw, none.dr] {
        assert_eq!(
            e.estimate, 0.0,
            "treating no one gains nothing by definition"
        );
    }
    let target = &values[1];
    close(target.churn.ipw.estimate, &v["ipw"], 1e-12, "ipw churn");
    close(target.churn.dr.estimate, &v["dr"], 1e-12, "dr churn");
    close(
        target.net_value.ipw.estimate,
        &v["net_value"]["ipw"],
        1e-12,
        "ipw net value",
    );
    close(
        target.net_value.snipw.estimate,
        &v["net_value"]["snipw"],
        1e-12,
        "snipw net value",
    );
    close(
        target.net_value.dr.estimate,
        &v["net_value"]["dr"],
        1e-12,
        "dr net value",
    );
    close(
        target.modelled_net_value,
        &v["net_value"]["modelled"],
        1e-12,
        "modelled net value",
    );
    let dr = target.net_value.dr;
    assert!(dr.low < dr.estimate && dr.estimate < dr.high, "{dr:?}");
}
