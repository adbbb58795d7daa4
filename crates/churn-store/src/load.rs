//! `churn store load`: a data directory's learners and events into a store,
//! in large atomic batches (not through HTTP). Idempotent: each event's id
//! is derived from its learner, time and place among that learner's events
//! at that time (in the contract's canonical order), so loading the same
//! data again stores nothing twice.

use churn_core::{Dataset, Event, Learner, NO_COURSE};
use serde_json::{Map, Value, json};

use crate::{
    ContractEvent, IngestRow, LearnerProfile, LearnerStore, PutOutcome, RowOutcome, StoreError,
};

/// What a load did; the event counts reconcile with the data's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub learners_created: u64,
    pub learners_replaced: u64,
    /// Learners whose new profile was refused (a `signup_at` later than an
    /// event already stored), with the store's events kept.
    pub learners_refused: u64,
    pub events_accepted: u64,
    pub events_duplicate: u64,
    /// Events refused by the store (their learner's profile was refused).
    pub events_refused: u64,
}

/// A learner's profile as the contract's JSON.
pub fn profile_of(dataset: &Dataset, learner: &Learner) -> LearnerProfile {
    let mut map = Map::new();
    map.insert(
        "signup_at".into(),
        json!(churn_core::format_timestamp(learner.signup_at)),
    );
    map.insert("plan".into(), json!(learner.plan));
    map.insert(
        "acquisition_channel".into(),
        json!(learner.acquisition_channel),
    );
    map.insert("device".into(), json!(learner.device));
    let attributes = &dataset.attributes;
    for (name, value) in attributes.numeric.iter().zip(&learner.numeric_attributes) {
        let value = if value.is_nan() {
            Value::Null
        } else {
            json!(value)
        };
        map.insert(name.clone(), value);
    }
    for (name, value) in attributes
        .categorical
        .iter()
        .zip(&learner.categorical_attributes)
    {
        map.insert(name.clone(), json!(value));
    }
    LearnerProfile {
        signup_at: learner.signup_at,
        json: map,
    }
}

/// An event of `dataset` with its names.
pub fn event_of(dataset: &Dataset, e: &Event) -> ContractEvent {
    ContractEvent {
        ts: e.ts,
        event_type: dataset.event_type_name(e.event_type).to_owned(),
        course_id: (e.course != NO_COURSE)
            .then(|| dataset.courses.get(e.course as usize).map(|c| c.id.clone()))
            .flatten(),
        count: e.count,
        duration_s: e.duration_s,
        score: e.score,
        amount: e.amount,
        latency_ms: e.latency_ms,
        stalls: e.stalls,
    }
}

/// Loads every learner's profile, then every event in batches of
/// `batch_rows`, each batch one durable commit; `progress(n)` after each
/// batch of n events.
pub fn load_dataset(
    store: &dyn LearnerStore,
    dataset: &Dataset,
    batch_rows: usize,
    progress: &dyn Fn(u64),
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    for learner in &dataset.learners {
        match store.put_profile(&learner.id, &profile_of(dataset, learner))? {
            PutOutcome::Created => loaded.learners_created += 1,
            PutOutcome::Replaced => loaded.learners_replaced += 1,
            PutOutcome::SignupAfterEvents => loaded.learners_refused += 1,
        }
    }
    let mut order: Vec<usize> = (0..dataset.events.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&dataset.events[a], &dataset.events[b]);
        x.learner.cmp(&y.learner).then_with(|| x.canonical_cmp(y))
    });
    let mut batch = Vec::with_capacity(batch_rows.max(1));
    let mut previous: Option<(u32, i64)> = None;
    let mut ordinal = 0u32;
    for &i in &order {
        let e = &dataset.events[i];
        ordinal = if previous == Some((e.learner, e.ts)) {
            ordinal + 1
        } else {
            0
        };
        previous = Some((e.learner, e.ts));
        let Some(learner) = dataset.learners.get(e.learner as usize) else {
            continue;
        };
        batch.push(IngestRow {
            learner_id: learner.id.clone(),
            event_id: Some(format!("{}@{}#{ordinal}", learner.id, e.ts)),
            event: event_of(dataset, e),
        });
        if batch.len() >= batch_rows.max(1) {
            tally(&mut loaded, &store.ingest(&batch)?);
            progress(batch.len() as u64);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        tally(&mut loaded, &store.ingest(&batch)?);
        progress(batch.len() as u64);
    }
    Ok(loaded)
}

fn tally(loaded: &mut Loaded, outcomes: &[RowOutcome]) {
    for outcome in outcomes {
        match outcome {
            RowOutcome::Accepted => loaded.events_accepted += 1,
            RowOutcome::Duplicate => loaded.events_duplicate += 1,
            RowOutcome::UnknownLearner | RowOutcome::BeforeSignup | RowOutcome::BeforeRetention => {
                loaded.events_refused += 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_twice_stores_every_event_once_and_reads_back_each_history() {
        let params = churn_sim::SimParams {
            learners: 60,
            days: 60,
            seed: 5,
            ..churn_sim::SimParams::default()
        }
        .check()
        .unwrap();
        let dataset = churn_sim::simulate(&params, &|_| {}).dataset;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let first = load_dataset(&store, &dataset, 1000, &|_| {}).unwrap();
        let n = dataset.events.len() as u64;
        assert!(n > 1000, "{n} events");
        assert_eq!(first.learners_created, 60);
        assert_eq!(
            (
                first.events_accepted,
                first.events_duplicate,
                first.events_refused
            ),
            (n, 0, 0)
        );
        let again = load_dataset(&store, &dataset, 777, &|_| {}).unwrap();
        assert_eq!(again.learners_replaced, 60);
        assert_eq!((again.events_accepted, again.events_duplicate), (0, n));
        assert_eq!(store.counts().unwrap(), (60, n));
        for (index, learner) in dataset.learners.iter().enumerate() {
            let mut expected: Vec<&Event> = dataset
                .events
                .iter()
                .filter(|e| e.learner as usize == index)
                .collect();
            expected.sort_by(|a, b| a.canonical_cmp(b));
            let history = store.history(&learner.id, i64::MAX).unwrap().unwrap();
            let mut got = history.events.clone();
            // Ties at one time: compare as sets of events, in canonical order.
            let key = |e: &ContractEvent| format!("{e:?}");
            got.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| key(a).cmp(&key(b))));
            let mut want: Vec<ContractEvent> =
                expected.iter().map(|e| event_of(&dataset, e)).collect();
            want.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| key(a).cmp(&key(b))));
            assert_eq!(
                format!("{got:?}"),
                format!("{want:?}"),
                "learner {}",
                learner.id
            );
            assert_eq!(history.profile, profile_of(&dataset, learner).json);
        }
    }
}
