//! What wraps every request: its id, its metrics, reading its whole body
//! (before it may take a scoring slot), and admission to the scoring slots.
//!
//! The order matters for overload: a request's body is read first, under
//! `body_timeout_ms` (a stalled client gets 408 and holds no slot); only then
//! does it wait, at most `queue_wait_ms`, for one of `max_concurrency` slots
//! (else 503 `overloaded`, counted as load shedding), and then it has
//! `request_timeout_ms` to be answered (else 503 `timeout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::{RouteLabel, RouteStatus};

/// The request id of the request being answered.
#[derive(Clone)]
pub struct RequestId(pub String);

static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
    });
    format!(
        "{prefix:08x}-{:012x}",
        REQUESTS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes the client's `x-request-id` when it is sane, else makes one; puts it
/// on the request, the response and the tracing span.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Counts and times every routed request.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let telemetry = &state.telemetry;
    telemetry
        .requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status,
        })
        .inc();
    telemetry
        .latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let micros = elapsed.as_micros() as u64;
    if status >= 500 {
        tracing::warn!(status, route, micros, "answered");
    } else {
        tracing::debug!(status, route, micros, "answered");
    }
    response
}

/// Reads the whole body, at most `max_body_bytes`, within `body_timeout_ms`,
/// and hands the request on with the body in memory. A body that does not
/// arrive in time is the client's fault: 408, and the connection is closed.
pub async fn read_body(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let config = &state.config;
    let limit = config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limit);
    let read = tokio::time::timeout(
        Duration::from_millis(config.body_timeout_ms),
        limited.collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return too_large(limit).into_response();
        }
        Ok(Err(e)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("cannot read the body: {e}"),
            )
            .into_response();
        }
        Err(_) => {
            state.telemetry.slow_clients.inc();
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    config.body_timeout_ms
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// The scoring slots: `max_concurrency` permits, and a queue for them that
/// never holds a request longer than `queue_wait_ms`.
///
/// A request that finds every slot busy is refused at once when the wait
/// it can expect (the requests already waiting, times the mean time a slot
/// is held, over the slots: Little's law) is longer than `queue_wait_ms`;
/// otherwise it waits, at most that long. So under overload the excess is
/// refused in microseconds and the admitted wait a bounded time, instead of
/// every request queueing behind the cores.
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: u64,
    waiting: AtomicU64,
    /// Moving average of how long an admitted request holds its slot, µs.
    held_micros: AtomicU64,
    wait: Duration,
    answer_within: Duration,
    shed: Counter,
    timeouts: Counter,
}

impl Admission {
    /// `slots` at once, a wait of at most `wait_ms` for one, `timeout_ms` to
    /// answer; refusals are counted in `shed`, late answers in `timeouts`.
    pub fn new(
        slots: usize,
        wait_ms: u64,
        timeout_ms: u64,
        shed: Counter,
        timeouts: Counter,
    ) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(slots)),
            capacity: slots.max(1) as u64,
            waiting: AtomicU64::new(0),
            held_micros: AtomicU64::new(0),
            wait: Duration::from_millis(wait_ms),
            answer_within: Duration::from_millis(timeout_ms),
            shed,
            timeouts,
        }
    }

    /// Adds one admitted request's time in its slot to the moving average
    /// (weight 1/8).
    fn observe(&self, held: Duration) {
        let sample = held.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .held_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
    }

    /// The wait a request that joins the queue now can expect.
    fn expected_wait(&self) -> Duration {
        let ahead = self.waiting.load(Ordering::Relaxed) + 1;
        Duration::from_micros(
            ahead.saturating_mul(self.held_micros.load(Ordering::Relaxed)) / self.capacity,
        )
    }

    fn refuse(&self) -> Response {
        self.shed.inc();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at capacity; retry shortly",
        )
        .into_response()
    }
}

/// One place in the queue, given up when dropped (also when a timed-out
/// request stops waiting).
struct Queued<'a>(&'a AtomicU64);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicU64) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Queued(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits a scoring request to a slot, or refuses it at once with 503
/// `overloaded` when its expected wait is longer than `queue_wait_ms`. A
/// request that joined the queue is never refused later: the decision is
/// made on arrival, so every refusal is fast. An admitted request (its wait
/// included) not answered within `request_timeout_ms` gets 503 `timeout`.
pub async fn admit(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    let arrived = Instant::now();
    let answer = async {
        let permit = match admission.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let queued = Queued::join(&admission.waiting);
                let permit = admission.slots.clone().acquire_owned().await;
                drop(queued);
                match permit {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => return admission.refuse(),
                }
            }
        };
        let admitted = Instant::now();
        let response = next.run(request).await;
        admission.observe(admitted.elapsed());
        drop(permit);
        response
    };
    if admission.slots.available_permits() == 0 && admission.expected_wait() > admission.wait {
        return admission.refuse();
    }
    match tokio::time::timeout_at((arrived + admission.answer_within).into(), answer).await {
        Ok(response) => response,
        Err(_) => {
            admission.timeouts.inc();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took longer than the server's limit",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn status(app: &Router, path: &str) -> StatusCode {
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        app.clone()
            .oneshot(request)
            .await
            .map_or(StatusCode::INTERNAL_SERVER_ERROR, |r| r.status())
    }

    /// A router behind `admission` with `/hold` (answers once released) and
    /// `/quick`; `/hold` is already in its slot when this returns, with the
    /// handle of its answer.
    async fn holding(
        admission: &Arc<Admission>,
    ) -> (
        Router,
        Arc<tokio::sync::Notify>,
        tokio::task::JoinHandle<StatusCode>,
    ) {
        let release = Arc::new(tokio::sync::Notify::new());
        let held = release.clone();
        let app = Router::new()
            .route(
                "/hold",
                get(move || {
                    let held = held.clone();
                    async move {
                        held.notified().await;
                        "done"
                    }
                }),
            )
            .route("/quick", get(|| async { "quick" }))
            .route_layer(axum::middleware::from_fn_with_state(
                admission.clone(),
                admit,
            ));
        let holder = tokio::spawn({
            let app = app.clone();
            async move { status(&app, "/hold").await }
        });
        while admission.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        (app, release, holder)
    }

    #[tokio::test]
    async fn a_queued_request_is_admitted_when_a_slot_frees_not_refused() {
        let admission = Arc::new(Admission::new(
            1,
            50,
            60_000,
            Counter::default(),
            Counter::default(),
        ));
        let (app, release, holder) = holding(&admission).await;
        // Nothing measured yet: the expected wait is within the limit, so it queues.
        let queued = tokio::spawn({
            let app = app.clone();
            async move { status(&app, "/quick").await }
        });
        while admission.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        assert_eq!(holder.await.ok(), Some(StatusCode::OK));
        assert_eq!(queued.await.ok(), Some(StatusCode::OK));
        assert_eq!((admission.shed.get(), admission.timeouts.get()), (0, 0));
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_request_that_would_wait_too_long_is_refused_at_once() {
        // A minute's wait is allowed, but a slot is known to be held 10 min.
        let admission = Arc::new(Admission::new(
            1,
            60_000,
            600_000,
            Counter::default(),
            Counter::default(),
        ));
        admission.observe(Duration::from_secs(600));
        let (app, release, holder) = holding(&admission).await;
        let start = Instant::now();
        assert_eq!(
            status(&app, "/quick").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "refused without waiting for the minute"
        );
        assert_eq!(admission.shed.get(), 1);
        release.notify_one();
        assert_eq!(holder.await.ok(), Some(StatusCode::OK));
    }

    #[test]
    fn the_expected_wait_is_the_queue_times_the_mean_hold_over_the_slots() {
        let admission = Admission::new(4, 20, 1000, Counter::default(), Counter::default());
        assert_eq!(
            admission.expected_wait(),
            Duration::ZERO,
            "nothing measured yet"
        );
        admission.observe(Duration::from_micros(800));
        admission.waiting.store(9, Ordering::Relaxed);
        // (9 waiting + this one) × 800 µs / 4 slots.
        assert_eq!(admission.expected_wait(), Duration::from_micros(2000));
        admission.observe(Duration::from_micros(1600));
        // 800 − 800/8 + 1600/8 = 900.
        assert_eq!(admission.held_micros.load(Ordering::Relaxed), 900);
    }

    #[tokio::test]
    async fn an_admitted_request_past_its_time_is_a_timeout_not_shedding() {
        let admission = Arc::new(Admission::new(
            4,
            5,
            20,
            Counter::default(),
            Counter::default(),
        ));
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                admission.clone(),
                admit,
            ));
        assert_eq!(status(&app, "/slow").await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((admission.shed.get(), admission.timeouts.get()), (0, 1));
        assert_eq!(
            admission.slots.available_permits(),
            4,
            "the slot is given back"
        );
    }
}
