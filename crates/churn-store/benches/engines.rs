//! Which embedded engine for the learner store: SQLite (the store as built,
//! `churn_store::sqlite`) against redb (a pure-Rust B-tree store with durable
//! commits) and fjall (a pure-Rust LSM tree, a journal fsynced per batch), on the two things the server does: ingest batches of 1,000
//! events with an idempotency check, each batch one durable commit; and read
//! one learner's history in time order.
//!
//!     cargo bench -p churn-store --bench engines [-- LEARNERS EVENTS_PER_LEARNER]
//!
//! Prints each engine's ingest rate, read latency (p50 / p99 over random
//! learners) and file size. The redb and fjall sides are written here for the
//! comparison only: events keyed (learner, ts, seq) and a set of event ids.

use std::time::{Duration, Instant};

use churn_store::{ContractEvent, IngestRow, LearnerProfile, LearnerStore};
use redb::{ReadableDatabase, TableDefinition};

const EVENTS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("events");
const EVENT_IDS: TableDefinition<&str, ()> = TableDefinition::new("event_ids");
const BATCH: usize = 1000;

fn rows(learners: usize, per_learner: usize) -> Vec<IngestRow> {
    // Interleaved as events arrive: every learner's i-th event, then the next.
    let start = churn_core::parse_timestamp("2026-01-02T00:00:00Z").unwrap_or(0);
    (0..per_learner)
        .flat_map(|i| {
            (0..learners).map(move |l| IngestRow {
                learner_id: format!("L{l:06}"),
                // Ids in no relation to learners' order, as clients make them.
                event_id: Some(format!("{:016x}", scramble((l * per_learner + i) as u64))),
                event: ContractEvent {
                    ts: start + (i as i64) * 3_600_000 + l as i64,
                    event_type: "video_watched".into(),
                    course_id: Some(format!("C{:03}", l % 40)),
                    count: 1,
                    duration_s: 60.0 + (i % 600) as f64,
                    score: f64::NAN,
                    amount: f64::NAN,
                    latency_ms: 120.0,
                    stalls: 0.0,
                },
            })
        })
        .collect()
}

/// A bijection of u64 (splitmix64's finaliser): distinct ids in a random-looking order.
fn scramble(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn encode(e: &ContractEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(e.event_type.as_bytes());
    out.push(0);
    out.extend_from_slice(e.course_id.as_deref().unwrap_or("").as_bytes());
    out.push(0);
    out.extend_from_slice(&e.count.to_le_bytes());
    for v in [e.duration_s, e.score, e.amount, e.latency_ms, e.stalls] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn percentile(mut times: Vec<Duration>, p: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() - 1) as f64 * p) as usize]
}

fn report(engine: &str, ingest: Duration, n: usize, reads: Vec<Duration>, bytes: u64) {
    println!(
        "{engine:8} ingest {:>9.0} events/s ({n} events in {:.2} s, batches of {BATCH}, one durable commit each)   read one learner: p50 {:>6.0} µs  p99 {:>6.0} µs   file {:.0} MiB",
        n as f64 / ingest.as_secs_f64(),
        ingest.as_secs_f64(),
        percentile(reads.clone(), 0.5).as_secs_f64() * 1e6,
        percentile(reads, 0.99).as_secs_f64() * 1e6,
        bytes as f64 / (1 << 20) as f64
    );
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let learners = args.first().copied().unwrap_or(2000);
    let per_learner = args.get(1).copied().unwrap_or(250);
    let all = rows(learners, per_learner);
    let probes: Vec<String> = (0..500)
        .map(|i| format!("L{:06}", (i * 7919) % learners))
        .collect();
    println!(
        "{learners} learners x {per_learner} events = {} events",
        all.len()
    );

    // SQLite: the store as the server runs it. PRELOAD=n first stores n
    // events per learner (grouped by learner, then merged), so the
    // interleaved ingest lands in a table that already holds a history;
    // MERGE_AT sets the inbox rows at which a merge starts.
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let preload = env("PRELOAD").unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let store = churn_store::sqlite::SqliteStore::open_merging_at(
        &dir.path().join("s.db"),
        env("MERGE_AT").unwrap_or(churn_store::sqlite::MERGE_AT),
    )?;
    let profile = churn_store::contract::profile(
        &serde_json::json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly", "acquisition_channel": "ads"}),
        "profile",
    )
    .map_err(|e| e.reason)?;
    for l in 0..learners {
        store.put_profile(&format!("L{l:06}"), &profile as &LearnerProfile)?;
    }
    if preload > 0 {
        let t = Instant::now();
        let start = churn_core::parse_timestamp("2026-01-01T00:00:00Z").unwrap_or(0);
        let history: Vec<IngestRow> = (0..learners)
            .flat_map(|l| {
                (0..preload).map(move |i| IngestRow {
                    learner_id: format!("L{l:06}"),
                    event_id: Some(format!("p{:016x}", scramble((l * preload + i) as u64))),
                    event: ContractEvent::new(start + i as i64, "login"),
                })
            })
            .collect();
        for batch in history.chunks(50_000) {
            store.ingest(batch)?;
        }
        store.merge()?;
        println!(
            "sqlite   preloaded {} events ({preload} per learner) in {:.1} s",
            history.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    for batch in all.chunks(BATCH) {
        store.ingest(batch)?;
    }
    let acknowledged = t.elapsed();
    // Until every row is in the clustered table: the rate it keeps up with.
    store.merge()?;
    let ingest = t.elapsed();
    println!(
        "sqlite   acknowledged {:.0} events/s; merged into the clustered table at {:.0} events/s overall",
        all.len() as f64 / acknowledged.as_secs_f64(),
        all.len() as f64 / ingest.as_secs_f64()
    );
    let reads = probes
        .iter()
        .map(|id| {
            let t = Instant::now();
            let history = store.history(id, i64::MAX);
            assert!(
                history.is_ok_and(|h| h.is_some_and(|h| h.events.len() == per_learner + preload))
            );
            t.elapsed()
        })
        .collect();
    report("sqlite", ingest, all.len(), reads, dir_bytes(dir.path()));

    if std::env::var("ENGINES").is_ok_and(|e| e == "sqlite") {
        return Ok(());
    }

    // redb: the same work, durable commits (redb's default).
    let dir = tempfile::tempdir()?;
    let db = redb::Database::create(dir.path().join("r.redb"))?;
    let t = Instant::now();
    let mut seq = 0u64;
    for batch in all.chunks(BATCH) {
        let tx = db.begin_write()?;
        {
            let mut ids = tx.open_table(EVENT_IDS)?;
            let mut events = tx.open_table(EVENTS)?;
            for row in batch {
                if let Some(id) = &row.event_id
                    && ids.insert(id.as_str(), ())?.is_some()
                {
                    continue;
                }
                seq += 1;
                events.insert(
                    (row.learner_id.as_str(), row.event.ts, seq),
                    encode(&row.event).as_slice(),
                )?;
            }
        }
        tx.commit()?;
    }
    let ingest = t.elapsed();
    let reads = probes
        .iter()
        .map(|id| {
            let t = Instant::now();
            let read = || -> Result<usize, Box<dyn std::error::Error>> {
                let tx = db.begin_read()?;
                let events = tx.open_table(EVENTS)?;
                let mut n = 0;
                for entry in
                    events.range((id.as_str(), i64::MIN, 0)..=(id.as_str(), i64::MAX, u64::MAX))?
                {
                    let (_, value) = entry?;
                    n += usize::from(!value.value().is_empty());
                }
                Ok(n)
            };
            assert_eq!(read().ok(), Some(per_learner));
            t.elapsed()
        })
        .collect();
    report("redb", ingest, all.len(), reads, dir_bytes(dir.path()));

    // fjall: one atomic batch per 1,000 events, the journal fsynced after each.
    let dir = tempfile::tempdir()?;
    let keyspace = fjall::Config::new(dir.path()).open()?;
    let events = keyspace.open_partition("events", fjall::PartitionCreateOptions::default())?;
    let ids = keyspace.open_partition("event_ids", fjall::PartitionCreateOptions::default())?;
    let key = |learner: &str, ts: i64, seq: u64| {
        let mut k = Vec::with_capacity(learner.len() + 17);
        k.extend_from_slice(learner.as_bytes());
        k.push(0);
        k.extend_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        k
    };
    let t = Instant::now();
    let mut seq = 0u64;
    for chunk in all.chunks(BATCH) {
        let mut batch = keyspace.batch();
        let mut fresh = std::collections::HashSet::new();
        for row in chunk {
            if let Some(id) = &row.event_id
                && (ids.contains_key(id.as_bytes())? || !fresh.insert(id.as_str()))
            {
                continue;
            }
            if let Some(id) = &row.event_id {
                batch.insert(&ids, id.as_bytes(), []);
            }
            seq += 1;
            batch.insert(
                &events,
                key(&row.learner_id, row.event.ts, seq),
                encode(&row.event),
            );
        }
        batch.commit()?;
        keyspace.persist(fjall::PersistMode::SyncAll)?;
    }
    let ingest = t.elapsed();
    let reads = probes
        .iter()
        .map(|id| {
            let t = Instant::now();
            let mut prefix = id.as_bytes().to_vec();
            prefix.push(0);
            let n = events.prefix(prefix).filter(|entry| entry.is_ok()).count();
            assert_eq!(n, per_learner);
            t.elapsed()
        })
        .collect();
    report(
        "fjall",
        ingest,
        all.len(),
        reads,
        dir_bytes_deep(dir.path()),
    );
    Ok(())
}

fn dir_bytes_deep(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        dir_bytes_deep(&path)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
