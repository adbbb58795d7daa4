//! What the monitor reads of the artifacts of the models a log names: the
//! drift reference they were trained with, and, for a refitted model, the
//! latest labelled as-of time it learned from.

use std::collections::BTreeMap;
use std::path::Path;

use churn_model::drift::TrainingReference;

/// The logged models' artifacts, as far as the monitor needs them.
#[derive(Debug, Default)]
pub struct LoggedModels {
    /// Each model's training reference, where its artifact has one.
    pub references: BTreeMap<String, TrainingReference>,
    /// Each refitted model's `metrics.refit.labelled_through` (ms).
    pub learned_through: BTreeMap<String, i64>,
    /// Why a model's drift is measured against its first period instead:
    /// its artifact was not found, or it has no reference.
    pub notes: Vec<String>,
}

impl LoggedModels {
    /// Reads the artifact of every distinct `name@version` in `labels` from
    /// `models` (a directory of artifacts). A model that cannot be read is a
    /// note, not an error: its log can still be monitored.
    pub fn read<'a>(labels: impl Iterator<Item = &'a str>, models: &Path) -> LoggedModels {
        let mut labels: Vec<&str> = labels.collect();
        labels.sort_unstable();
        labels.dedup();
        let mut found = LoggedModels::default();
        for label in labels {
            let artifact = churn_model::artifact::resolve(label, models)
                .and_then(|dir| churn_model::artifact::load(&dir));
            let artifact = match artifact {
                Ok(artifact) => artifact,
                Err(e) => {
                    found.notes.push(format!(
                        "note: {label}: {e}; drift is measured against its first period"
                    ));
                    continue;
                }
            };
            if let Some(t) = artifact.card.metrics["refit"]["labelled_through"]
                .as_str()
                .and_then(|t| churn_core::parse_timestamp(t).ok())
            {
                found.learned_through.insert(label.to_owned(), t);
            }
            match artifact.reference {
                Some(r) => {
                    found.references.insert(label.to_owned(), r);
                }
                None => found.notes.push(format!(
                    "note: {label} has no reference.json: drift is measured against its first period"
                )),
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_is_a_note_and_each_label_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let found = LoggedModels::read(["m@1", "m@1", "n@2"].into_iter(), dir.path());
        assert!(found.references.is_empty() && found.learned_through.is_empty());
        assert_eq!(found.notes.len(), 2, "{:?}", found.notes);
        assert!(found.notes[0].starts_with("note: m@1:"));
    }

    #[test]
    fn a_refitted_model_says_what_it_learned_through() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let label = std::fs::read_dir(models.join("churn-gbdt"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| churn_model::artifact::load(&e.path()).ok())
            .map(|a| a.card)
            .find(|card| card.metrics["refit"]["labelled_through"].is_string())
            .map(|card| card.label())
            .unwrap_or_else(|| panic!("no refitted model under {}", models.display()));
        let found = LoggedModels::read(std::iter::once(label.as_str()), &models);
        assert!(found.learned_through.contains_key(&label), "{found:?}");
        assert!(found.references.contains_key(&label), "{found:?}");
    }
}
