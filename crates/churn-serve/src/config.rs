//! The server's settings: defaults, then `serve.toml`, then environment
//! (`CHURN_SERVE_*`), then flags (applied by the binary), checked once.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ServeError;

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on (plain HTTP; TLS is the proxy's job).
    pub addr: SocketAddr,
    /// Models directory (`<models>/<name>/<version>/`).
    pub models: PathBuf,
    /// The champion: `NAME` (its newest version, re-resolved on reload) or `NAME@VERSION`.
    pub champion: String,
    /// An optional challenger, same syntax.
    pub challenger: Option<String>,
    /// Share of learners (sticky by learner_id) sent to the challenger.
    pub challenger_share: f64,
    /// Playbook file (default: the committed playbook.toml built in): the
    /// risk bands, and the suggested actions unless `policy` is set.
    pub playbook: Option<PathBuf>,
    /// A policy directory exported by `churn ab --export-policy`: suggests the
    /// actions instead of the playbook.
    pub policy: Option<PathBuf>,
    /// Exploration share ε for the suggested action (0 = the playbook's choice always).
    pub epsilon: f64,
    /// Seed of the exploration draws.
    pub seed: u64,
    /// Course catalogue for raw-event instances: CSV with `course_id` and `lessons`.
    pub courses: Option<PathBuf>,
    /// Bearer token for `/v1/admin/*`; admin routes are off without one.
    pub admin_token: Option<String>,
    /// Bearer token required on prediction routes, when set.
    pub predict_token: Option<String>,
    /// The learner store: a file path (the embedded store, created when
    /// missing). With it, applications post events and profiles, and ask for
    /// a learner's prediction by id; none when unset.
    pub store: Option<String>,
    /// Bearer token for writing to the learner store (`POST /v1/events`,
    /// `PUT` and `DELETE /v1/learners/{id}`); those routes are off without one.
    pub ingest_token: Option<String>,
    /// Retention of the learner store, days (0 = raw events kept for ever):
    /// at start and then hourly, off the request path, each learner's events
    /// older than this are summarised (`churn store compact`); predictions
    /// stay exact from that cutoff plus 30 days on.
    pub retention_days: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most instances in one request.
    pub max_batch: usize,
    /// Most events in one raw instance.
    pub max_events: usize,
    /// Most events in one `POST /v1/events` request.
    pub max_ingest_rows: usize,
    /// Largest `top_k`.
    pub max_top_k: usize,
    /// Scoring requests handled at once (default: the cores plus one:
    /// scoring is CPU-bound, the one more covers the hand-offs between the
    /// async workers and the scoring threads, and more would only take CPU
    /// from the workers that read requests and refuse the excess). A request
    /// is admitted only once its whole body has arrived.
    pub max_concurrency: usize,
    /// The longest wait for a scoring slot a request is queued for, ms: a
    /// request whose expected wait (the queue ahead of it times the mean
    /// time a slot is held, over the slots) is longer is refused on arrival
    /// with 503 + Retry-After (counted as load shedding). A queued request is
    /// not refused later, so refusals are fast and the admitted wait about
    /// this long at most.
    pub queue_wait_ms: u64,
    /// Time to answer a scoring request, its wait for a slot included, ms
    /// (then 503 `timeout`, counted apart from shedding).
    pub request_timeout_ms: u64,
    /// Time a client has to send its request headers, ms (slow clients are cut off).
    pub header_timeout_ms: u64,
    /// Time a client has to send its whole body once the headers are in, ms
    /// (then 408 and the connection is closed: a stalled client is the
    /// client's fault, not load).
    pub body_timeout_ms: u64,
    /// Prediction log (JSON lines); none when unset.
    pub prediction_log: Option<PathBuf>,
    /// Served feature values for `churn monitor`'s input drift, JSON lines,
    /// size-rotated like the prediction log; off unless set. It holds the
    /// model's input values (not raw events), for a sampled share of learners.
    pub feature_log: Option<PathBuf>,
    /// Share of learners (by a hash of learner_id) whose features are logged.
    pub feature_log_share: f64,
    /// Served rows per model kept for the live drift (PSI) in /metrics (one
    /// prediction in four enters); 0 = off.
    pub drift_window: usize,
    /// Rotate the log when it reaches this size, bytes.
    pub log_max_bytes: u64,
    /// Rotated log files kept.
    pub log_keep: usize,
    /// Log records buffered between requests and the writer; beyond, records are dropped (and counted).
    pub log_buffer: usize,
    /// Poll the models directory for new versions every this many seconds (0 = off).
    pub watch_seconds: u64,
    /// Time given to in-flight requests on shutdown, ms.
    pub shutdown_grace_ms: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models: PathBuf::from("models"),
            champion: "churn-gbdt".into(),
            challenger: None,
            challenger_share: 0.1,
            playbook: None,
            policy: None,
            epsilon: 0.0,
            seed: 42,
            courses: None,
            admin_token: None,
            predict_token: None,
            store: None,
            ingest_token: None,
            retention_days: 0,
            max_body_bytes: 4 << 20,
            max_batch: 1000,
            max_events: 100_000,
            max_ingest_rows: 10_000,
            max_top_k: 50,
            max_concurrency: default_concurrency(),
            queue_wait_ms: 10,
            request_timeout_ms: 10_000,
            header_timeout_ms: 5_000,
            body_timeout_ms: 5_000,
            prediction_log: None,
            feature_log: None,
            feature_log_share: 0.1,
            drift_window: 2000,
            log_max_bytes: 64 << 20,
            log_keep: 5,
            log_buffer: 65_536,
            watch_seconds: 0,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// The cores this process may use, plus one.
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 1
}

impl ServeConfig {
    /// Reads a TOML file over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, ServeError> {
        toml::from_str(text).map_err(|e| ServeError::Config(e.to_string()))
    }

    /// Applies `CHURN_SERVE_<KEY>` variables from `vars` (e.g. the process
    /// environment): tokens, paths, numbers. Unknown `CHURN_SERVE_*` names are refused.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ServeError> {
        for (key, value) in vars {
            let Some(name) = key.strip_prefix("CHURN_SERVE_") else {
                continue;
            };
            let bad = |what: &str| ServeError::Config(format!("{key}={value:?}: {what}"));
            let number = |v: &str| v.parse::<u64>().map_err(|_| bad("not a whole number"));
            match name {
                "ADDR" => self.addr = value.parse().map_err(|_| bad("not host:port"))?,
                "MODELS" => self.models = value.into(),
                "CHAMPION" => self.champion = value,
                "CHALLENGER" => self.challenger = Some(value),
                "CHALLENGER_SHARE" => {
                    self.challenger_share = value.parse().map_err(|_| bad("not a number"))?
                }
                "PLAYBOOK" => self.playbook = Some(value.into()),
                "POLICY" => self.policy = Some(value.into()),
                "EPSILON" => self.epsilon = value.parse().map_err(|_| bad("not a number"))?,
                "COURSES" => self.courses = Some(value.into()),
                "ADMIN_TOKEN" => self.admin_token = Some(value),
                "PREDICT_TOKEN" => self.predict_token = Some(value),
                "INGEST_TOKEN" => self.ingest_token = Some(value),
                "STORE" => self.store = Some(value),
                "RETENTION_DAYS" => self.retention_days = number(&value)?,
                "PREDICTION_LOG" => self.prediction_log = Some(value.into()),
                "FEATURE_LOG" => self.feature_log = Some(value.into()),
                "FEATURE_LOG_SHARE" => {
                    self.feature_log_share = value.parse().map_err(|_| bad("not a number"))?
                }
                "DRIFT_WINDOW" => self.drift_window = number(&value)? as usize,
                "MAX_BATCH" => self.max_batch = number(&value)? as usize,
                "MAX_BODY_BYTES" => self.max_body_bytes = number(&value)? as usize,
                "MAX_CONCURRENCY" => self.max_concurrency = number(&value)? as usize,
                "QUEUE_WAIT_MS" => self.queue_wait_ms = number(&value)?,
                "REQUEST_TIMEOUT_MS" => self.request_timeout_ms = number(&value)?,
                "BODY_TIMEOUT_MS" => self.body_timeout_ms = number(&value)?,
                "WATCH_SECONDS" => self.watch_seconds = number(&value)?,
                _ => return Err(bad("unknown setting")),
            }
        }
        Ok(())
    }

    /// Checks every value once, so the server can trust them.
    pub fn check(&self) -> Result<(), ServeError> {
        let fail = |m: String| Err(ServeError::Config(m));
        if !(0.0..=1.0).contains(&self.challenger_share) {
            return fail(format!(
                "challenger_share must be in [0, 1], got {}",
                self.challenger_share
            ));
        }
        if !(0.0..=1.0).contains(&self.feature_log_share) {
            return fail(format!(
                "feature_log_share must be in [0, 1], got {}",
                self.feature_log_share
            ));
        }
        if !(0.0..=1.0).contains(&self.epsilon) {
            return fail(format!("epsilon must be in [0, 1], got {}", self.epsilon));
        }
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_batch", self.max_batch),
            ("max_events", self.max_events),
            ("max_ingest_rows", self.max_ingest_rows),
            ("max_top_k", self.max_top_k),
            ("max_concurrency", self.max_concurrency),
            ("log_keep", self.log_keep),
            ("log_buffer", self.log_buffer),
        ] {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if self.request_timeout_ms == 0 || self.header_timeout_ms == 0 || self.body_timeout_ms == 0
        {
            return fail("timeouts must be at least 1 ms".into());
        }
        for (name, token) in [
            ("admin_token", &self.admin_token),
            ("predict_token", &self.predict_token),
            ("ingest_token", &self.ingest_token),
        ] {
            if token.as_ref().is_some_and(|t| t.len() < 16) {
                return fail(format!("{name} must be at least 16 characters"));
            }
        }
        if self.champion.trim().is_empty() {
            return fail("champion must name a model".into());
        }
        if self.retention_days > 0 && self.store.is_none() {
            return fail("retention_days needs a learner store (store)".into());
        }
        if self.retention_days > 0 && self.retention_days < 30 {
            return fail(format!(
                "retention_days must be 0 (off) or at least 30: features read the last 30 days raw, got {}",
                self.retention_days
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_and_every_value_checked() {
        let mut config = ServeConfig::from_toml("champion = \"a\"\nmax_batch = 10\n").unwrap();
        assert_eq!((config.champion.as_str(), config.max_batch), ("a", 10));
        assert_eq!(
            config.max_concurrency,
            default_concurrency(),
            "defaults fill the rest"
        );
        config
            .apply_env([
                ("CHURN_SERVE_MAX_BATCH".into(), "20".into()),
                ("PATH".into(), "/bin".into()),
            ])
            .unwrap();
        assert_eq!(config.max_batch, 20);
        assert!(config.check().is_ok());
        let err = config
            .apply_env([("CHURN_SERVE_MAX_BTCH".into(), "1".into())])
            .unwrap_err();
        assert!(err.to_string().contains("CHURN_SERVE_MAX_BTCH"));
        assert!(
            ServeConfig::from_toml("max_bach = 1")
                .unwrap_err()
                .to_string()
                .contains("max_bach")
        );
        config.epsilon = 2.0;
        assert!(config.check().unwrap_err().to_string().contains("epsilon"));
        config.epsilon = 0.0;
        config.admin_token = Some("short".into());
        assert!(config.check().unwrap_err().to_string().contains("16"));
    }
}
