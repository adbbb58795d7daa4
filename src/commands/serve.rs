//! `churn serve`: the settings (defaults < --config < CHURN_SERVE_* < flags),
//! then the server until a signal stops it.

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::ui::say;

/// The server's settings: defaults < --config < CHURN_SERVE_* < flags.
pub fn serve_config(args: &ServeArgs) -> Result<churn_serve::ServeConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            churn_serve::ServeConfig::from_toml(&text)
                .with_context(|| format!("--config {}", path.display()))?
        }
        None => churn_serve::ServeConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(v) = &args.models {
        config.models = v.clone();
    }
    if let Some(v) = &args.champion {
        config.champion = v.clone();
    }
    if let Some(v) = &args.challenger {
        config.challenger = Some(v.clone());
    }
    if let Some(v) = args.challenger_share {
        config.challenger_share = v;
    }
    if let Some(v) = args.addr {
        config.addr = v;
    }
    if let Some(v) = &args.playbook {
        config.playbook = Some(v.clone());
    }
    if let Some(v) = &args.policy {
        config.policy = Some(v.clone());
    }
    if let Some(v) = &args.feature_log {
        config.feature_log = Some(v.clone());
    }
    if let Some(v) = args.feature_log_share {
        config.feature_log_share = v;
    }
    if let Some(v) = args.epsilon {
        config.epsilon = v;
    }
    if let Some(v) = &args.courses {
        config.courses = Some(v.clone());
    }
    if let Some(v) = &args.store {
        config.store = Some(v.clone());
    }
    if let Some(v) = &args.prediction_log {
        config.prediction_log = Some(v.clone());
    }
    if let Some(v) = args.watch_seconds {
        config.watch_seconds = v;
    }
    if let Some(v) = args.max_batch {
        config.max_batch = v;
    }
    if let Some(v) = args.max_concurrency {
        config.max_concurrency = v;
    }
    config.check()?;
    Ok(config)
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let config = serve_config(args)?;
    let addr = config.addr;
    let has_store = config.store.is_some();
    let app = churn_serve::App::build(config)?;
    let runtime = churn_serve::runtime().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| churn_serve::ServeError::Bind(addr, e))?;
        let bound = listener.local_addr().unwrap_or(addr);
        // What the server says on stdout is for whoever started it; a closed
        // stdout must not stop it serving.
        for (role, model) in app.models() {
            let _ = say!("{role}: {model}");
        }
        let _ = say!(
            "listening on http://{bound}  (POST /v1/predict, GET /metrics, /openapi.json){}",
            if has_store {
                "; learner store: POST /v1/events, GET /v1/learners/{id}/prediction"
            } else {
                ""
            }
        );
        app.serve(listener, churn_serve::shutdown_signal()).await?;
        let _ = say!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}
