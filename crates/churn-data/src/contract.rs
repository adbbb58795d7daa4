//! `contract.toml`: what a data directory says about its own data (DESIGN.md
//! "Bring your own data"). Optional: without it a directory is read with the
//! defaults (the `either` label, no custom activity types).
//!
//! ```toml
//! label = "cancellation"          # inactivity | cancellation | either
//!
//! [events]
//! activity = ["video_play"]       # custom event types that count as activity
//!
//! [learners]                      # extra learners columns: profile features
//! numeric = ["studied_credits"]
//! categorical = ["region", "age_band"]
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use churn_core::{LabelDefinition, LearnerAttributes, parse_event_type};
use serde::{Deserialize, Serialize};

use crate::DataError;

/// The file name of the contract in a data directory.
pub const CONTRACT_FILE: &str = "contract.toml";

/// What a data directory declares about its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// What "churned" means for this data (a command's `--label` overrides it).
    #[serde(default)]
    pub label: LabelDefinition,
    /// How event types are read.
    #[serde(default)]
    pub events: EventsContract,
    /// The learner attributes: extra `learners` columns that are features.
    #[serde(default, skip_serializing_if = "LearnerAttributes::is_empty")]
    pub learners: LearnerAttributes,
}

/// The `[events]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsContract {
    /// Custom event types that count as activity (keep a learner present),
    /// like the seven known activity types. Other custom types are signals.
    #[serde(default)]
    pub activity: BTreeSet<String>,
}

impl Contract {
    /// Reads `dir/contract.toml`, or the defaults when there is none.
    pub fn read_dir(dir: &Path) -> Result<Self, DataError> {
        let file = dir.join(CONTRACT_FILE);
        if !file.is_file() {
            return Ok(Contract::default());
        }
        let text = std::fs::read_to_string(&file).map_err(|e| DataError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|message| DataError::Contract { file, message })
    }

    /// Parses and checks the text of a `contract.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let contract: Contract = toml::from_str(text).map_err(|e| e.to_string())?;
        for name in &contract.events.activity {
            match parse_event_type(name) {
                Ok(Ok(known)) => {
                    return Err(format!(
                        "events.activity lists {known:?}, a known event type: its meaning is fixed by the contract; list only custom types"
                    ));
                }
                Ok(Err(_)) => {}
                Err(e) => return Err(format!("events.activity: {e}")),
            }
        }
        contract
            .learners
            .check()
            .map_err(|e| format!("learners: {e}"))?;
        Ok(contract)
    }

    /// Whether the custom event type `name` counts as activity.
    pub fn is_activity(&self, name: &str) -> bool {
        self.events.activity.contains(name)
    }

    /// The TOML text of this contract.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_label_and_the_custom_activity_types() {
        let c = Contract::parse(
            "label = \"cancellation\"\n[events]\nactivity = [\"video_play\", \"page_view\"]\n",
        )
        .unwrap();
        assert_eq!(c.label, LabelDefinition::Cancellation);
        assert!(c.is_activity("video_play") && !c.is_activity("login_streak"));
        assert_eq!(Contract::parse(&c.to_toml()), Ok(c));
        assert_eq!(Contract::parse(""), Ok(Contract::default()));
        let with_attributes = Contract::parse(
            "[learners]\nnumeric = [\"credits\"]\ncategorical = [\"region\", \"age_band\"]\n",
        )
        .unwrap();
        assert_eq!(with_attributes.learners.categorical, ["region", "age_band"]);
        assert_eq!(
            Contract::parse(&with_attributes.to_toml()),
            Ok(with_attributes)
        );
    }

    #[test]
    fn refuses_what_it_cannot_mean() {
        let known = Contract::parse("[events]\nactivity = [\"payment\"]\n").unwrap_err();
        assert!(known.contains("known event type"), "{known}");
        let bad = Contract::parse("[events]\nactivity = [\"Video Play\"]\n").unwrap_err();
        assert!(bad.contains("Video Play"), "{bad}");
        let label = Contract::parse("label = \"churn\"\n").unwrap_err();
        assert!(label.contains("churn"), "{label}");
        let attribute = Contract::parse("[learners]\ncategorical = [\"plan\"]\n").unwrap_err();
        assert!(attribute.contains("plan"), "{attribute}");
        let typo = Contract::parse("lable = \"either\"\n").unwrap_err();
        assert!(typo.contains("lable"), "{typo}");
    }
}
