//! Imported LightGBM models predict and explain exactly as LightGBM does.
//! Fixtures: `fixtures/make_fixtures.py` (LightGBM 4.x), committed.

use std::path::Path;

use churn_gbdt::shap::reference_contributions;
use churn_gbdt::{Explainer, FeatureKind, from_lightgbm_text};

#[derive(serde::Deserialize)]
struct Fixture {
    model_txt: String,
    rows: Vec<Vec<Option<f64>>>,
    raw: Vec<f64>,
    contrib: Vec<Vec<f64>>,
    categorical: Vec<usize>,
}

pub fn rows(rows: &[Vec<Option<f64>>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect()
}

fn fixtures() -> Vec<(String, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read fixture");
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, serde_json::from_str(&text).expect("parse fixture")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 6,
        "fixtures missing: run fixtures/make_fixtures.py"
    );
    out
}

#[test]
fn imported_models_predict_lightgbm_margins() {
    for (name, fixture) in fixtures() {
        let model =
            from_lightgbm_text(&fixture.model_txt).unwrap_or_else(|e| panic!("{name}: {e}"));
        for &c in &fixture.categorical {
            assert_eq!(model.feature_kinds[c], FeatureKind::Categorical, "{name}");
        }
        let rows = rows(&fixture.rows);
        let flat: Vec<f64> = rows.concat();
        let batch = model.predict_raw_batch(&flat).expect("shape");
        for (i, (row, expected)) in rows.iter().zip(&fixture.raw).enumerate() {
            let got = model.predict_raw(row);
            assert!(
                (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "{name} row {i}: ours {got} LightGBM {expected}"
            );
            assert_eq!(
                got.to_bits(),
                batch[i].to_bits(),
                "{name} row {i}: batch differs from single"
            );
        }
    }
}

#[test]
fn treeshap_equals_lightgbm_pred_contrib() {
    let mut worst: f64 = 0.0;
    for (name, fixture) in fixtures() {
        let model =
            from_lightgbm_text(&fixture.model_txt).unwrap_or_else(|e| panic!("{name}: {e}"));
        let explainer = Explainer::new(&model);
        let rows = rows(&fixture.rows);
        let batch = explainer
            .contributions_batch(&rows.concat())
            .expect("shape");
        let stride = model.num_features() + 1;
        for (i, (row, expected)) in rows.iter().zip(&fixture.contrib).enumerate() {
            let fast = explainer.contributions(row);
            let reference = reference_contributions(&model, row);
            assert_eq!(fast.len(), expected.len());
            for j in 0..fast.len() {
                let diff = (fast[j] - expected[j]).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 1e-6,
                    "{name} row {i} feature {j}: ours {} LightGBM {}",
                    fast[j],
                    expected[j]
                );
                assert!(
                    (fast[j] - reference[j]).abs() <= 1e-9,
                    "{name} row {i} feature {j}: oracle differs"
                );
                assert_eq!(fast[j].to_bits(), batch[i * stride + j].to_bits());
            }
            let sum: f64 = fast.iter().sum();
            assert!(
                (sum - model.predict_raw(row)).abs() <= 1e-9,
                "{name} row {i}: contributions do not sum to the margin"
            );
        }
    }
    eprintln!("largest |ours - LightGBM pred_contrib| = {worst:e}");
}

#[test]
fn import_refuses_what_it_cannot_reproduce() {
    let (_, fixture) = fixtures().into_iter().next().expect("a fixture");
    let multiclass = fixture.model_txt.replacen("num_class=1", "num_class=3", 1);
    let err = from_lightgbm_text(&multiclass).unwrap_err().to_string();
    assert!(err.contains("num_class=3") && err.contains("line"), "{err}");
    let regression = fixture
        .model_txt
        .replacen("objective=binary", "objective=regression", 1);
    assert!(
        from_lightgbm_text(&regression)
            .unwrap_err()
            .to_string()
            .contains("only binary")
    );
    let truncated = &fixture.model_txt[..fixture.model_txt.len() / 3];
    assert!(
        from_lightgbm_text(truncated).is_err(),
        "a truncated model must not import"
    );
    let bad_child = fixture
        .model_txt
        .replacen("left_child=", "left_child=99 ", 1);
    assert!(from_lightgbm_text(&bad_child).is_err());
    assert!(from_lightgbm_text("").is_err());
    assert!(
        from_lightgbm_text("tree\nnum_class=1\nobjective=binary sigmoid:1\nmax_feature_idx=2\n")
            .is_err()
    );
}
