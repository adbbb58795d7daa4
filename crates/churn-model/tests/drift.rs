//! PSI and KS against numpy / scipy on committed fixtures (`fixtures/make_fixtures.py`).

use churn_model::drift::{Reference, ks_2samp};
use serde_json::Value;

fn numbers(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("{key}")))
        .collect()
}

fn close(ours: f64, theirs: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
        "{what}: ours {ours}, reference {theirs}"
    );
}

#[test]
fn psi_and_ks_match_numpy_and_scipy() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/drift.json");
    let fixtures: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("drift.json")).expect("JSON");
    let cases = fixtures["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5);
    for (i, case) in cases.iter().enumerate() {
        let (reference, current) = (numbers(case, "reference"), numbers(case, "current"));
        let r = Reference::from_values(&reference, 10).expect("reference");
        assert_eq!(r.edges, numbers(case, "edges"), "case {i}: edges");
        close(
            r.psi(&current).expect("psi"),
            case["psi"].as_f64().expect("psi"),
            &format!("case {i}: psi"),
        );
        let ks = ks_2samp(&current, &reference).expect("ks");
        close(
            ks.statistic,
            case["ks"].as_f64().expect("ks"),
            &format!("case {i}: ks"),
        );
        close(
            ks.p_value,
            case["ks_p"].as_f64().expect("p"),
            &format!("case {i}: ks p"),
        );
    }
}
