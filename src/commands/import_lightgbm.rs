//! `churn import-lightgbm`: a LightGBM text model as a churn artifact (same
//! predictions, exact TreeSHAP).

use anyhow::{Context, Result};

use crate::cli::ImportArgs;
use crate::ui::say;

pub fn import_lightgbm(args: &ImportArgs) -> Result<()> {
    let path = &args.model_txt;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes.clone()).with_context(|| {
        format!(
            "{} is not a LightGBM text model (not UTF-8)",
            path.display()
        )
    })?;
    let model = churn_model::import::from_lightgbm(&text, |name| {
        churn_features::registry::find(name).map(|f| f.description.to_owned())
    })
    .with_context(|| format!("cannot import {}", path.display()))?;
    let trees = match &model.scorer {
        churn_model::Scorer::Gbdt(m) => m.trees.len(),
        churn_model::Scorer::Logistic(_) => 0,
    };
    let reads_churn_features = model
        .schema
        .reads_churn_features(churn_features::FeatureSet::none());
    let card_input = churn_model::CardInput {
        training: churn_model::Training::ImportedLightgbm(
            churn_model::artifact::ImportedTraining {
                source: path.display().to_string(),
                source_sha256: churn_model::artifact::sha256_hex(&bytes),
                reads_churn_features,
            },
        ),
        seed: 0,
        parameters: serde_json::json!({ "trees": trees, "calibration": model.calibration.name() }),
        metrics: serde_json::json!({}),
        created_at_ms: churn_core::now_ms(),
        reference: None,
        phases: Vec::new(),
    };
    let (card, dir) = churn_model::artifact::save(&args.out, &args.name, &model, card_input)?;
    say!(
        "{}@{}: {} trees, {} features ({}) -> {}",
        card.name,
        card.version,
        trees,
        card.features.len(),
        if reads_churn_features {
            "churn's features: evaluate, predict, explain and serve work on raw data"
        } else {
            "a plain table: serve with feature payloads"
        },
        dir.display()
    )?;
    Ok(())
}
