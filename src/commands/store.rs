//! `churn store load`: a data directory, validated as every command loads
//! one, into a learner store.

use anyhow::Result;

use crate::cli::StoreLoadArgs;
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
