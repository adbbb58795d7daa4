//! Deployments: loading and checking the champion (and challenger) with
//! the configured playbook or policy, and swapping a new deployment in
//! atomically while the old one keeps serving until it is ready.

use std::sync::Arc;

use churn_model::{Explore, Policy};
use serde_json::{Value, json};

use crate::ServeError;
use crate::config::ServeConfig;
use crate::state::{AppState, Catalogue, Deployment, Served};
use crate::telemetry::{ModelLabel, OutcomeLabel};

/// Loads and checks one model reference with the configured playbook.
pub fn load_served(config: &ServeConfig, reference: &str) -> Result<Served, ServeError> {
    let dir = churn_model::artifact::resolve(reference, &config.models)?;
    let artifact = churn_model::artifact::load(&dir)?;
    let schema = artifact.model.schema();
    let reads_churn_features = schema.reads_churn_features(artifact.card.training.feature_set());
    let playbook = churn_model::playbook::load(config.playbook.as_deref(), schema)?;
    let bands = playbook.bands();
    let chosen: Box<dyn Policy> = match &config.policy {
        Some(dir) => {
            let policy = churn_model::uplift_policy::load(dir)?;
            policy.check_inputs(schema)?;
            Box::new(policy)
        }
        None => Box::new(playbook),
    };
    let policy = Explore::new(chosen, config.epsilon, config.seed)?;
    let index = schema
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| (f.name.clone(), j))
        .collect();
    let card = serde_json::to_value(&artifact.card)
        .map_err(|e| ServeError::Config(format!("model card: {e}")))?;
    let catalogue = match &config.courses {
        Some(path) => Catalogue::read(path)?,
        None => Catalogue::from_card(&artifact.card.training),
    };
    let catalogue = catalogue.with_deadlines(&artifact.card.training);
    let drift = match (&artifact.reference, config.drift_window) {
        (Some(reference), window) if window > 0 => {
            crate::drift::LiveDrift::new(reference.clone(), schema, window)
        }
        _ => None,
    };
    let training = &artifact.card.training;
    let set = training.feature_set();
    let mut custom_types: Vec<String> = training
        .activity_types()
        .iter()
        .chain(set.custom_types())
        .cloned()
        .collect();
    custom_types.sort();
    custom_types.dedup();
    let layout = set.layout(&custom_types, set.attributes(), &catalogue.calendar);
    Ok(Served {
        custom_types,
        layout,
        drift,
        artifact,
        policy,
        bands,
        reads_churn_features,
        index,
        card,
        catalogue,
    })
}

/// Loads the configured champion and challenger.
pub fn load_deployment(
    config: &ServeConfig,
    champion: &str,
    challenger: Option<&str>,
) -> Result<Deployment, ServeError> {
    let champion = Arc::new(load_served(config, champion)?);
    let challenger = challenger
        .map(|c| load_served(config, c).map(Arc::new))
        .transpose()?;
    if let Some(c) = &challenger
        && c.name() == champion.name()
    {
        return Err(ServeError::Config(format!(
            "champion and challenger are both {:?}: give the challenger another name",
            c.name()
        )));
    }
    Ok(Deployment {
        champion,
        challenger,
        challenger_share: config.challenger_share,
    })
}

impl AppState {
    /// Loads, checks and swaps in a deployment of `champion` (and
    /// `challenger`); the old one keeps serving on error, whose message is
    /// returned. One reload at a time.
    pub async fn reload(
        self: &Arc<Self>,
        champion: String,
        challenger: Option<String>,
    ) -> Result<Value, String> {
        let _one_at_a_time = self.reload.lock().await;
        let config = self.config.clone();
        let loaded = crate::threads::spawn_blocking(move || {
            load_deployment(&config, &champion, challenger.as_deref())
        })
        .await
        .map_err(|e| format!("loading was interrupted: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        let outcome = |label: &str| {
            self.telemetry
                .reloads
                .get_or_create(&OutcomeLabel {
                    outcome: label.to_owned(),
                })
                .inc()
        };
        match loaded {
            Ok(deployment) => {
                let previous = self.deployment.swap(Arc::new(deployment));
                for (role, served) in previous.all() {
                    self.telemetry
                        .model_info
                        .remove(&ModelLabel::of(role, served));
                }
                self.publish_models();
                outcome("ok");
                let now = self.deployment.load();
                let models: Vec<Value> = now
                    .all()
                    .map(|(r, s)| crate::info::model_summary(r, s))
                    .collect();
                tracing::info!(models = %serde_json::to_string(&models).unwrap_or_default(), "reloaded");
                Ok(json!({"reloaded": true, "models": models}))
            }
            Err(message) => {
                outcome("refused");
                tracing::warn!(error = %message, "reload refused; the previous models keep serving");
                Err(message)
            }
        }
    }

    /// Sets the `model_info` gauge for the models being served.
    pub fn publish_models(&self) {
        let deployment = self.deployment.load();
        for (role, served) in deployment.all() {
            self.telemetry
                .model_info
                .get_or_create(&ModelLabel::of(role, served))
                .set(1);
        }
    }
}
