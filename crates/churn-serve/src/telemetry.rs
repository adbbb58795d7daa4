//! Prometheus metrics (prometheus-client: one registry per server, so tests
//! can run many servers in one process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// How a reload ended: `ok` or `refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BandRole {
    pub band: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub name: String,
    pub version: String,
    pub role: String,
}

impl ModelLabel {
    /// The label of `served` in `role`.
    pub fn of(role: crate::state::Role, served: &crate::state::Served) -> Self {
        ModelLabel {
            name: served.name().to_owned(),
            version: served.version().to_owned(),
            role: role.name().to_owned(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeatureLabel {
    pub name: String,
    pub version: String,
    pub role: String,
    pub feature: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The server's metrics.
pub struct Telemetry {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub predictions: Family<BandRole, Counter>,
    pub model_info: Family<ModelLabel, Gauge>,
    pub log_dropped: Counter,
    pub shed: Counter,
    pub timeouts: Counter,
    pub slow_clients: Counter,
    /// Events stored by `POST /v1/events`.
    pub ingested: Counter,
    /// Events acknowledged but not merged into the store's main table yet.
    pub store_backlog: Gauge,
    pub reloads: Family<OutcomeLabel, Counter>,
    pub feature_psi: Family<FeatureLabel, FloatGauge>,
    pub prediction_psi: Family<ModelLabel, FloatGauge>,
    pub drift_rows: Family<ModelLabel, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~3.3 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.000_05, 2.0, 17,
    ))
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("churn");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let predictions = Family::<BandRole, Counter>::default();
        let model_info = Family::<ModelLabel, Gauge>::default();
        let log_dropped = Counter::default();
        let shed = Counter::default();
        let timeouts = Counter::default();
        let slow_clients = Counter::default();
        let ingested = Counter::default();
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        registry.register(
            "predictions",
            "Predictions by risk band and model role",
            predictions.clone(),
        );
        registry.register(
            "model_info",
            "Models being served (1 = serving)",
            model_info.clone(),
        );
        registry.register(
            "prediction_log_dropped",
            "Prediction log records dropped because the writer fell behind",
            log_dropped.clone(),
        );
        registry.register(
            "load_shed",
            "Requests refused with 503 because every scoring slot stayed busy for queue_wait_ms",
            shed.clone(),
        );
        registry.register(
            "request_timeouts",
            "Admitted requests answered 503 because scoring took longer than request_timeout_ms",
            timeouts.clone(),
        );
        registry.register(
            "slow_clients",
            "Requests answered 408 because the client did not send its body within body_timeout_ms",
            slow_clients.clone(),
        );
        registry.register("reloads", "Model reloads by outcome", reloads.clone());
        registry.register(
            "events_ingested",
            "Events stored in the learner store by POST /v1/events",
            ingested.clone(),
        );
        let store_backlog = Gauge::default();
        registry.register(
            "store_backlog_events",
            "Events acknowledged and waiting to be merged into the learner store's main table (a backlog that keeps growing: merges do not keep up)",
            store_backlog.clone(),
        );
        let feature_psi = Family::<FeatureLabel, FloatGauge>::default();
        let prediction_psi = Family::<ModelLabel, FloatGauge>::default();
        let drift_rows = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "feature_psi",
            "Population stability index of each input feature over the latest served rows against the model's training rows",
            feature_psi.clone(),
        );
        registry.register(
            "prediction_psi",
            "Population stability index of the predicted probability over the latest served rows against the model's test predictions",
            prediction_psi.clone(),
        );
        registry.register(
            "drift_window_rows",
            "Served rows the drift statistics are computed over",
            drift_rows.clone(),
        );
        Telemetry {
            registry,
            requests,
            latency,
            predictions,
            model_info,
            log_dropped,
            shed,
            timeouts,
            slow_clients,
            ingested,
            store_backlog,
            reloads,
            feature_psi,
            prediction_psi,
            drift_rows,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}
