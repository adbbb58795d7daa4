//! The logistic fit against scikit-learn (fixtures/make_fixtures.py).

use churn_model::{ChurnModel, Kind, PreparedModel, Scorer};
use churn_train::{Table, fit};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn logistic_equals_scikit_learn() {
    let f = fixture("logistic.json");
    let rows = f["y"].as_array().expect("labels").len();
    let mut table = Table {
        features: vec![
            ("x1".into(), Kind::Numeric, String::new()),
            ("x2".into(), Kind::Numeric, String::new()),
            ("x3".into(), Kind::Numeric, String::new()),
            ("cat".into(), Kind::Categorical, String::new()),
        ],
        labels: floats(&f["y"]),
        ..Table::default()
    };
    for r in 0..rows {
        table.numeric.extend(floats(&f["numeric"][r]));
        table
            .categorical
            .push(f["category"][r].as_str().map(str::to_owned));
        table.as_of.push(0);
        table.ids.push(r.to_string());
    }
    let all: Vec<usize> = (0..rows).collect();
    let schema = table.schema(&all).expect("schema");
    let c = f["C"].as_f64().expect("C");
    let model = fit::fit_logistic(&table, &schema, &all, c).expect("fits");

    let expected = floats(&f["coefficients"]);
    assert_eq!(
        model.coefficients.len(),
        expected.len(),
        "same design columns"
    );
    for (i, (ours, theirs)) in model.coefficients.iter().zip(&expected).enumerate() {
        assert!(
            (ours - theirs).abs() <= 1e-4,
            "coefficient {i}: ours {ours}, scikit-learn {theirs}"
        );
    }
    let intercept = f["intercept"].as_f64().expect("intercept");
    assert!((model.intercept - intercept).abs() <= 1e-4);

    let prepared = PreparedModel::new(ChurnModel {
        schema,
        scorer: Scorer::Logistic(model),
        calibration: churn_model::Calibration::None,
    })
    .expect("valid model");
    let probabilities = floats(&f["probabilities"]);
    for (r, expected) in probabilities.iter().enumerate() {
        let mut categories = Vec::new();
        let explained = prepared
            .explain(&table.input(r, &mut categories))
            .expect("explains");
        assert!(
            (explained.probability - expected).abs() <= 1e-6,
            "row {r}: ours {}, scikit-learn {expected}",
            explained.probability,
        );
        let sum: f64 = explained.base_value + explained.contributions.iter().sum::<f64>();
        assert!(
            (sum - explained.margin).abs() < 1e-12,
            "contributions sum to the margin"
        );
    }
}

/// A large test set: every row is scored for the metrics, an evenly spaced
/// sample of `EXPLAINED_TEST_ROWS` is explained, and the probabilities are
/// the model's whether a row was explained or not.
#[test]
fn a_large_test_set_is_scored_whole_and_explained_on_a_sample() {
    use churn_train::{EXPLAINED_TEST_ROWS, Family, Split, TrainConfig, fit_family};
    let rows = 2 * EXPLAINED_TEST_ROWS + 1000;
    let mut table = Table {
        features: vec![("x".into(), Kind::Numeric, String::new())],
        ..Table::default()
    };
    for r in 0..rows {
        // A deterministic, noisy signal: x in [0, 1), label 1 for most high x.
        let x = ((r * 7919) % 1000) as f64 / 1000.0;
        let noise = ((r * 104_729) % 97) as f64 / 97.0;
        table.numeric.push(x);
        table
            .labels
            .push(f64::from(u8::from(x + 0.5 * noise > 0.9)));
        table.as_of.push(0);
        table.ids.push(r.to_string());
    }
    let split = Split::untimed(
        (0..2000).collect(),
        (2000..4000).collect(),
        (4000..rows).collect(),
    );
    let fitted = fit_family(
        &table,
        &split,
        Family::Logistic,
        &TrainConfig::with_seed(7),
        &mut |_| {},
    )
    .expect("fits");
    let n = split.test.len();
    assert_eq!(fitted.test.rows, n, "the metrics use every test row");
    assert_eq!(fitted.test_probabilities.len(), n);
    let step = n.div_ceil(EXPLAINED_TEST_ROWS);
    assert!(step > 1);
    assert_eq!(
        fitted.explained_rows,
        (0..n).step_by(step).collect::<Vec<_>>()
    );
    assert_eq!(
        fitted.test_contributions.len(),
        fitted.explained_rows.len() * table.features.len()
    );
    let prepared = PreparedModel::new(fitted.model.clone()).expect("prepared");
    for &r in fitted.explained_rows.iter().take(50) {
        let mut categories = Vec::new();
        let p = prepared
            .probability(&table.input(split.test[r], &mut categories))
            .expect("scores");
        assert!((p - fitted.test_probabilities[r]).abs() < 1e-12);
    }
    let names: Vec<&str> = fitted.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(names, ["fit", "calibrate", "explain", "evaluate"]);
}
