//! `churn evaluate`: a model's metrics on the labelled examples of a data
//! directory, overall and by segment.

use anyhow::{Result, bail};

use crate::cli::EvaluateArgs;
use crate::commands::scoring::load_feature_model;
use crate::flags::{reference_time, snapshot_spec};
use crate::loading::load_and_report;
use crate::ui::{Ui, say};

pub fn evaluate(ui: &Ui, args: &EvaluateArgs) -> Result<()> {
    let artifact = load_feature_model(&args.source)?;
    let now = reference_time(&args.now)?;
    let loaded = load_and_report(ui, &args.data, &args.work, now)?;
    let spec = snapshot_spec(&args.snapshots.settings(), &loaded.contract, now)?;
    let mut dataset = loaded.dataset;
    let plan = spec.resolve(&dataset)?;
    let table =
        churn_train::Table::from_dataset(&mut dataset, &plan, artifact.card.training.feature_set());
    if table.rows() == 0 {
        bail!("no labelled examples at the as-of times asked for");
    }
    let bar = ui.progress(table.rows() as u64, "scoring");
    let mut probabilities = Vec::with_capacity(table.rows());
    for i in 0..table.rows() {
        let mut categories = Vec::new();
        probabilities.push(
            artifact
                .model
                .probability(&table.input(i, &mut categories))?,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let m = churn_metrics::metrics(&probabilities, &table.labels, artifact.card.seed);
    say!(
        "{}@{} on {} labelled examples ({} labelled as-of times): churn {:.1}%",
        artifact.card.name,
        artifact.card.version,
        m.rows,
        {
            let mut times = table.as_of.clone();
            times.sort_unstable();
            times.dedup();
            times.len()
        },
        100.0 * m.churn_rate
    )?;
    let rows: Vec<usize> = (0..table.rows()).collect();
    let by_segment =
        churn_train::metrics_by_segment(&table, &rows, &probabilities, artifact.card.seed);
    say!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "overall": m,
            "by_segment": by_segment,
        }))?
    )?;
    Ok(())
}
