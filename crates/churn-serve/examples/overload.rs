//! Overload benchmark for `churn serve` (issue 18): finds the saturating rate
//! of one kind of request, then offers twice that rate at a fixed schedule
//! (open loop, like `oha -q`) and reports the admitted (200) and refused (503)
//! requests apart: their latency from the moment each was sent, and from the
//! moment it was due (which also counts any wait for a free connection of
//! this client), plus connection errors.
//!
//! ```sh
//! churn serve --models models &
//! cargo run --release -p churn-serve --example overload -- --addr 127.0.0.1:8080
//! ```
//!
//! Each request posts one learner with `--events` events (800 by default) as
//! raw data, so the server parses the JSON, computes the features and
//! explains the prediction. Loopback only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

struct Settings {
    addr: SocketAddr,
    events: usize,
    connections: usize,
    seconds: f64,
    saturate_connections: usize,
    factor: f64,
    floor_seconds: f64,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        events: 800,
        connections: 512,
        seconds: 10.0,
        saturate_connections: 8,
        factor: 2.0,
        floor_seconds: 10.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let bad = |e: &dyn std::fmt::Display| format!("{} {value:?}: {e}", args[i]);
        match args[i].as_str() {
            "--addr" => s.addr = value.parse().map_err(|e| bad(&e))?,
            "--events" => s.events = value.parse().map_err(|e| bad(&e))?,
            "--connections" => s.connections = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => s.seconds = value.parse().map_err(|e| bad(&e))?,
            "--saturate-connections" => {
                s.saturate_connections = value.parse().map_err(|e| bad(&e))?
            }
            "--factor" => s.factor = value.parse().map_err(|e| bad(&e))?,
            "--floor-seconds" => s.floor_seconds = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown flag {other}")),
        }
        i += 2;
    }
    if !s.addr.ip().is_loopback() {
        return Err("--addr must be a loopback address".into());
    }
    Ok(s)
}

/// One learner with `events` events over the 120 days before the as-of time.
fn body(events: usize) -> String {
    let as_of = 1_780_000_000_000_i64; // 2026-05-28
    let day = 86_400_000_i64;
    let start = as_of - 120 * day;
    let step = (120 * day) / events.max(1) as i64;
    let kinds = [
        "login",
        "video_watch",
        "lesson_complete",
        "quiz_attempt",
        "checkin",
    ];
    let list: Vec<Value> = (0..events)
        .map(|k| {
            let kind = kinds[k % kinds.len()];
            let mut event = json!({
                "ts": time(start + k as i64 * step),
                "event_type": kind,
            });
            match kind {
                "video_watch" => event["duration_s"] = json!(300 + (k % 7) * 60),
                "lesson_complete" => event["course_id"] = json!("C001"),
                "quiz_attempt" => {
                    event["course_id"] = json!("C001");
                    event["score"] = json!(0.5 + (k % 5) as f64 / 10.0);
                }
                _ => {}
            }
            event
        })
        .collect();
    json!({
        "instances": [{
            "learner_id": "L-overload",
            "as_of": time(as_of),
            "profile": {"signup_at": time(start - day), "plan": "monthly",
                        "acquisition_channel": "organic", "device": "ios"},
            "events": list,
        }],
        "top_k": 3,
    })
    .to_string()
}

/// RFC 3339 of ms since the epoch (UTC), without a date library.
fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
    /// It has answered a request before (so the server may have closed it
    /// since, idle).
    reused: bool,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
            reused: false,
        })
    }

    /// Posts `request` (a whole HTTP request) and returns the status,
    /// whether the server keeps the connection open, and when the last byte
    /// of the request was written.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, bool, Instant)> {
        self.reader.get_mut().write_all(request).await?;
        let written = Instant::now();
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut keep) = (0usize, true);
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                keep = false;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        self.reused = true;
        Ok((status, keep, written))
    }
}

#[derive(Default)]
struct Outcomes {
    /// (status, µs from send, µs from due time, µs from the request written)
    answered: Vec<(u16, u64, u64, u64)>,
    connection_errors: usize,
    /// The first few connection errors, as said.
    errors: Vec<String>,
}

impl Outcomes {
    fn error(&mut self, what: String) {
        self.connection_errors += 1;
        if self.errors.len() < 5 {
            self.errors.push(what);
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

/// Closed loop: `connections` clients each sending back to back for
/// `seconds`; returns the rate of 200 answers per second. Few connections
/// (a few more than the server's slots) keep every core busy without a
/// queue; many would turn each fast refusal into an immediate retry, a
/// storm that measures refusals rather than capacity.
async fn saturating_rate(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    connections: usize,
    seconds: f64,
) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut ok = 0u64;
                let mut connection = Connection::open(addr).await.ok();
                while Instant::now() < until {
                    let Some(c) = connection.as_mut() else {
                        connection = Connection::open(addr).await.ok();
                        continue;
                    };
                    match c.send(&request).await {
                        Ok((200, keep, _)) => {
                            ok += 1;
                            if !keep {
                                connection = None;
                            }
                        }
                        Ok((_, keep, _)) if keep => {}
                        _ => connection = None,
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / seconds
}

/// Open loop: one request due every 1/rate s for `seconds`, each on an idle
/// connection of the pool (a new one while fewer than `connections` exist).
async fn fixed_rate(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    rate: f64,
    seconds: f64,
    connections: usize,
) -> Outcomes {
    let idle: Arc<Mutex<Vec<Connection>>> = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let total = (rate * seconds) as u64;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (idle, open, outcomes, request) = (
            idle.clone(),
            open.clone(),
            outcomes.clone(),
            request.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut connection = loop {
                if let Some(c) = idle.lock().await.pop() {
                    break Some(c);
                }
                if open.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < connections {
                    break match Connection::open(addr).await {
                        Ok(c) => Some(c),
                        Err(_) => {
                            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                            None
                        }
                    };
                }
                open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
            };
            let Some(mut c) = connection.take() else {
                outcomes.lock().await.error("connect failed".into());
                return;
            };
            let mut sent = Instant::now();
            let mut result = c.send(&request).await;
            if result.is_err() && c.reused {
                // The server closed this idle keep-alive connection (its
                // header timeout): what a client does is send again on a new one.
                match Connection::open(addr).await {
                    Ok(fresh) => {
                        c = fresh;
                        sent = Instant::now();
                        result = c.send(&request).await;
                    }
                    Err(e) => result = Err(e),
                }
            }
            let done = Instant::now();
            let mut o = outcomes.lock().await;
            match result {
                Ok((status, keep, written)) => {
                    o.answered.push((
                        status,
                        (done - sent).as_micros() as u64,
                        (done - due).as_micros() as u64,
                        (done - written).as_micros() as u64,
                    ));
                    drop(o);
                    if keep {
                        idle.lock().await.push(c);
                    } else {
                        open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    o.error(e.to_string());
                    open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(outcomes)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

/// The machine's own wake-up latency, measured before any load: a thread
/// with the server workers' short slice sleeps 0.5 ms at a time for
/// `seconds` and records how late each wake-up is. On a shared or virtual
/// machine this floor can exceed 5 ms with nothing else running, and no
/// server on it can answer faster than it is woken.
fn wake_up_floor(seconds: f64) {
    let probe = std::thread::spawn(move || {
        churn_serve::latency_sensitive();
        let nap = Duration::from_micros(500);
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut late_us = Vec::new();
        while Instant::now() < until {
            let start = Instant::now();
            std::thread::sleep(nap);
            late_us.push(start.elapsed().saturating_sub(nap).as_micros() as u64);
        }
        late_us.sort_unstable();
        late_us
    });
    let Ok(late) = probe.join() else {
        return;
    };
    println!(
        "wake-up floor, idle ({} wake-ups over {seconds} s of 0.5 ms sleeps): late p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.2} ms, later than 5 ms: {}",
        late.len(),
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        percentile(&late, 0.999),
        percentile(&late, 1.0),
        late.iter().filter(|&&us| us > 5_000).count()
    );
}

fn report(label: &str, answered: &[(u16, u64, u64, u64)], status: u16) {
    let column = |pick: fn(&(u16, u64, u64, u64)) -> u64| {
        let mut values: Vec<u64> = answered
            .iter()
            .filter(|a| a.0 == status)
            .map(pick)
            .collect();
        values.sort_unstable();
        values
    };
    let (sent, due, written) = (column(|a| a.1), column(|a| a.2), column(|a| a.3));
    let within = |v: &[u64]| {
        100.0 * v.iter().filter(|&&us| us <= 5_000).count() as f64 / v.len().max(1) as f64
    };
    println!(
        "{label:<9} {:>7}  from send: p50 {:>6.2}  p99 {:>6.2}  p99.9 {:>6.2}  max {:>6.2} ms, ≤ 5 ms {:>7.3}%  |  after the last byte: p99 {:>6.2}  max {:>6.2} ms, ≤ 5 ms {:>7.3}%  |  from due: p50 {:>6.2}  p99 {:>6.2} ms",
        sent.len(),
        percentile(&sent, 0.5),
        percentile(&sent, 0.99),
        percentile(&sent, 0.999),
        percentile(&sent, 1.0),
        within(&sent),
        percentile(&written, 0.99),
        percentile(&written, 1.0),
        within(&written),
        percentile(&due, 0.5),
        percentile(&due, 0.99),
    );
}

fn main() {
    let s = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        // The client shares the cores with the server here (a real one
        // would not): it asks for the short slice of the server's async
        // workers, so its own wake-ups add as little as they can to what it
        // measures.
        .on_thread_start(churn_serve::latency_sensitive)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: no runtime: {e}");
            std::process::exit(1);
        }
    };
    let body = body(s.events);
    let request = Arc::new(
        format!(
            "POST /v1/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    if s.floor_seconds > 0.0 {
        wake_up_floor(s.floor_seconds);
    }
    runtime.block_on(async {
        println!(
            "one learner with {} events per request ({} bytes); the client runs on one thread",
            s.events,
            body.len()
        );
        let saturated =
            saturating_rate(s.addr, request.clone(), s.saturate_connections, s.seconds).await;
        println!(
            "saturating rate: {saturated:.0} answers/s ({} connections back to back, {} s)",
            s.saturate_connections, s.seconds
        );
        let rate = s.factor * saturated;
        let outcomes = fixed_rate(s.addr, request, rate, s.seconds, s.connections).await;
        let answered = &outcomes.answered;
        let ok = answered.iter().filter(|a| a.0 == 200).count();
        let shed = answered.iter().filter(|a| a.0 == 503).count();
        let other = answered.len() - ok - shed;
        println!(
            "offered {rate:.0} requests/s ({}x) for {} s over at most {} connections: {} answered 200 ({:.0}/s), {} answered 503, {} other, {} connection errors",
            s.factor,
            s.seconds,
            s.connections,
            ok,
            ok as f64 / s.seconds,
            shed,
            other,
            outcomes.connection_errors
        );
        report("admitted", answered, 200);
        report("refused", answered, 503);
        for e in &outcomes.errors {
            println!("connection error: {e}");
        }
    });
}
