//! Artifacts: a round trip, and every way a file can be wrong giving its own
//! clear error instead of a panic or a silently wrong model.

use std::path::{Path, PathBuf};

use churn_model::artifact::{self, CardInput};
use churn_model::logistic::{DesignColumn, LogisticModel, Source};
use churn_model::{Calibration, ChurnModel, InputFeature, InputSchema, Kind, ModelError, Scorer};

fn model() -> ChurnModel {
    let schema = InputSchema::new(vec![
        InputFeature {
            name: "days_idle".into(),
            kind: Kind::Numeric,
            description: "days since last login".into(),
            categories: vec![],
        },
        InputFeature {
            name: "plan".into(),
            kind: Kind::Categorical,
            description: "plan".into(),
            categories: vec!["annual".into(), "free".into()],
        },
    ])
    .expect("schema");
    ChurnModel {
        schema,
        scorer: Scorer::Logistic(LogisticModel {
            medians: vec![3.0],
            columns: vec![
                DesignColumn {
                    feature: 0,
                    source: Source::Value,
                },
                DesignColumn {
                    feature: 1,
                    source: Source::Category(1),
                },
            ],
            means: vec![4.0, 0.5],
            scales: vec![2.0, 0.5],
            coefficients: vec![0.8, 0.3],
            intercept: -1.5,
        }),
        calibration: Calibration::Platt { a: 1.1, b: 0.1 },
    }
}

fn card_input() -> CardInput {
    CardInput {
        training: churn_model::Training::ImportedLightgbm(
            churn_model::artifact::ImportedTraining {
                source: "model.txt".into(),
                source_sha256: "00".into(),
                reads_churn_features: false,
            },
        ),
        seed: 7,
        parameters: serde_json::json!({}),
        metrics: serde_json::json!({}),
        created_at_ms: 1_795_000_000_000,
        reference: None,
        phases: Vec::new(),
    }
}

fn saved() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, path) = artifact::save(dir.path(), "churn", &model(), card_input()).expect("saves");
    (dir, path)
}

fn error_of(path: &Path) -> String {
    match artifact::load(path) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_and_resolution_by_name() {
    let (dir, path) = saved();
    let loaded = artifact::load(&path).expect("loads");
    assert_eq!(loaded.model.model(), &model());
    assert_eq!(loaded.card.kind, "logistic");
    assert_eq!(loaded.card.calibration, "platt");
    assert!(
        loaded.card.version.starts_with("20261118T110640Z-"),
        "{}",
        loaded.card.version
    );
    assert_eq!(
        artifact::resolve("churn", dir.path()).expect("by name"),
        path
    );
    let pinned = format!("churn@{}", loaded.card.version);
    assert_eq!(
        artifact::resolve(&pinned, dir.path()).expect("pinned"),
        path
    );
    assert!(artifact::resolve("churn@nope", dir.path()).is_err());
    assert!(artifact::resolve("other", dir.path()).is_err());
    // The same model saved again gives the same bytes.
    let again = artifact::model_bytes(&model()).expect("bytes");
    assert_eq!(std::fs::read(path.join("model.bin")).expect("read"), again);
    // Contributions sum to the margin.
    let prediction = loaded
        .model
        .explain(&churn_model::Input {
            numeric: &[f64::NAN],
            categorical: &[Some("free")],
        })
        .expect("explains");
    let sum = prediction.base_value + prediction.contributions.iter().sum::<f64>();
    assert!((sum - prediction.margin).abs() < 1e-12);
    assert!(
        (prediction.margin - (-1.5 + 0.8 * (3.0 - 4.0) / 2.0 + 0.3 * (1.0 - 0.5) / 0.5)).abs()
            < 1e-12
    );
}

#[test]
fn truncated_tampered_and_wrong_version_files_are_refused_clearly() {
    let (_dir, path) = saved();
    let bin = path.join("model.bin");
    let card = path.join("model.json");
    let bytes = std::fs::read(&bin).expect("read");

    std::fs::write(&bin, &bytes[..bytes.len() / 2]).expect("truncate");
    let e = error_of(&path);
    assert!(
        e.contains("checksum mismatch") && e.contains("changed or truncated"),
        "{e}"
    );

    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x55;
    std::fs::write(&bin, &tampered).expect("tamper");
    assert!(error_of(&path).contains("checksum mismatch"));
    std::fs::write(&bin, &bytes).expect("restore");

    let text = std::fs::read_to_string(&card).expect("card");
    std::fs::write(
        &card,
        text.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .expect("edit");
    let e = error_of(&path);
    assert!(
        e.contains("format version 99") && e.contains("reads version 1"),
        "{e}"
    );

    std::fs::write(&card, "{ not json").expect("garble");
    assert!(error_of(&path).contains("not a model card"));

    // A checksum that matches garbage: decoding fails with a clear message.
    let garbage = b"\x01\x02\x03".to_vec();
    let fixed = text.replace(
        &artifact::sha256_hex(&bytes),
        &artifact::sha256_hex(&garbage),
    );
    std::fs::write(&card, fixed).expect("edit");
    std::fs::write(&bin, &garbage).expect("garbage");
    assert!(error_of(&path).contains("cannot decode"));
}

#[test]
fn a_schema_mismatch_is_named() {
    let (_dir, path) = saved();
    let card = path.join("model.json");
    let text = std::fs::read_to_string(&card).expect("card");
    std::fs::write(&card, text.replace("days_idle", "days_away")).expect("edit");
    assert!(error_of(&path).contains("feature schema mismatch"));

    std::fs::write(&card, &text).expect("restore");
    let loaded = artifact::load(&path).expect("loads");
    let e = loaded
        .model
        .schema()
        .require(&[("days_idle", Kind::Numeric), ("plan", Kind::Numeric)])
        .unwrap_err();
    assert!(matches!(e, ModelError::SchemaMismatch(_)));
    assert!(e.to_string().contains("position 1"), "{e}");
    assert!(InputSchema::churn_features_of(churn_features::FeatureSet::none()).len() > 30);
}

#[test]
fn inconsistent_models_are_refused_before_use() {
    let mut broken = model();
    if let Scorer::Logistic(m) = &mut broken.scorer {
        m.columns[1].source = Source::Category(9);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let e = artifact::save(dir.path(), "churn", &broken, card_input()).unwrap_err();
    assert!(e.to_string().contains("does not fit feature"), "{e}");
    assert!(artifact::save(dir.path(), "../evil", &model(), card_input()).is_err());
}
