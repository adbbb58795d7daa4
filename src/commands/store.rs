//! `churn store load`: a data directory, validated as every command loads
//! one, into a learner store.

use anyhow::Result;

use crate::cli::{StoreCompactArgs, StoreLoadArgs, StorePurgeArgs};
use crate::flags::reference_time;
use crate::loading::load_and_report;
use crate::ui::{Ui, say};

pub fn load(ui: &Ui, args: &StoreLoadArgs) -> Result<()> {
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let dataset = load_and_report(ui, &args.data, &args.work, reference_time(&args.now)?)?.dataset;
    let store = churn_store::open(&args.store)?;
    let bar = ui.progress(dataset.events.len() as u64, "storing events");
    let loaded =
        churn_store::load::load_dataset(store.as_ref(), &dataset, args.batch, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    say!(
        "learners: {} created, {} replaced, {} refused (signup_at after events already stored)",
        loaded.learners_created,
        loaded.learners_replaced,
        loaded.learners_refused
    )?;
    say!(
        "events: {} = {} stored + {} already there + {} refused",
        dataset.events.len(),
        loaded.events_accepted,
        loaded.events_duplicate,
        loaded.events_refused
    )?;
    let (learners, events) = store.counts()?;
    say!("{}: {learners} learners, {events} events", store.describe())?;
    Ok(())
}

pub fn compact(args: &StoreCompactArgs) -> Result<()> {
    let cutoff = match (&args.before, args.keep_days) {
        (Some(text), _) => churn_core::parse_timestamp(text)
            .map_err(|e| anyhow::anyhow!("--before {text:?}: {e}"))?,
        (None, Some(days)) => churn_core::now_ms() - i64::from(days) * churn_core::DAY_MS,
        (None, None) => anyhow::bail!("give --before or --keep-days"),
    };
    let store = churn_store::open(&args.store)?;
    let done = store.compact(cutoff)?;
    let applied = store.retention_cutoff()?.unwrap_or(cutoff);
    say!(
        "{}: {} learners' events before {} summarised: {} rows became {}",
        store.describe(),
        done.learners,
        churn_core::format_timestamp(applied),
        done.rows_before,
        done.rows_after
    )?;
    say!(
        "predictions are exact from as_of {} on; earlier events are refused",
        churn_core::format_timestamp(churn_store::retention::earliest_exact_as_of(applied))
    )?;
    Ok(())
}

pub fn purge(args: &StorePurgeArgs) -> Result<()> {
    let store = churn_store::open(&args.store)?;
    let said = store.purge()?;
    say!("{}: {said}", store.describe())?;
    Ok(())
}
