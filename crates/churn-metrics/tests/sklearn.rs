//! The metrics against scikit-learn (`fixtures/metrics.json`, written by
//! churn-train's `fixtures/make_fixtures.py`).

use churn_metrics::{average_precision, brier, log_loss, roc_auc};
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
fn metrics_equal_scikit_learn() {
    let f = fixture("metrics.json");
    let (p, y) = (floats(&f["p"]), floats(&f["y"]));
    for (name, ours) in [
        ("roc_auc", roc_auc(&p, &y)),
        ("average_precision", average_precision(&p, &y)),
        ("log_loss", log_loss(&p, &y)),
        ("brier", brier(&p, &y)),
    ] {
        let theirs = f[name].as_f64().expect("number");
        assert!(
            (ours - theirs).abs() <= 1e-9,
            "{name}: ours {ours}, scikit-learn {theirs}"
        );
    }
}
