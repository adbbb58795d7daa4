//! What the server holds: the deployed models (swapped atomically on reload),
//! the policy, the course catalogue, telemetry and the prediction log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use churn_model::artifact::Artifact;
use churn_model::{Explore, Policy, RiskBands};

use crate::ServeError;
use crate::config::ServeConfig;
use crate::predlog::PredictionLog;
use crate::telemetry::Telemetry;

/// Champion or challenger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Champion,
    Challenger,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Champion => "champion",
            Role::Challenger => "challenger",
        }
    }
}

/// One loaded model with its policy, ready to answer.
pub struct Served {
    pub artifact: Artifact,
    /// The playbook, or the configured experiment policy, with exploration.
    pub policy: Explore<Box<dyn Policy>>,
    /// The playbook's risk bands.
    pub bands: RiskBands,
    /// Live drift against the model's training reference (when it has one).
    pub drift: Option<crate::drift::LiveDrift>,
    /// Whether the model reads churn's own features (raw-event instances allowed).
    pub reads_churn_features: bool,
    /// Feature name → schema index.
    pub index: HashMap<String, usize>,
    /// The model card as JSON (served by `/v1/models/{name}`).
    pub card: serde_json::Value,
    /// Course id → lessons for raw-event instances: the configured catalogue,
    /// else the one the model was trained with (its card's `training.courses`).
    pub catalogue: Catalogue,
    /// The custom event types the model knows (its activity types and the
    /// ones its features read), sorted: a raw event's custom type index.
    pub custom_types: Vec<String>,
    /// How raw-event instances feed the model's feature set.
    pub layout: churn_features::FeatureLayout,
}

impl Served {
    pub fn name(&self) -> &str {
        &self.artifact.card.name
    }

    pub fn version(&self) -> &str {
        &self.artifact.card.version
    }
}

/// The models answering now.
pub struct Deployment {
    pub champion: Arc<Served>,
    pub challenger: Option<Arc<Served>>,
    pub challenger_share: f64,
}

impl Deployment {
    /// The model for a learner: the challenger for a fixed share of learner ids
    /// (by a stable hash, so a learner always meets the same model).
    pub fn route(&self, learner_id: &str) -> (Role, &Arc<Served>) {
        match &self.challenger {
            Some(challenger) if bucket(learner_id) < self.challenger_share => {
                (Role::Challenger, challenger)
            }
            _ => (Role::Champion, &self.champion),
        }
    }

    /// Every served model.
    pub fn all(&self) -> impl Iterator<Item = (Role, &Arc<Served>)> {
        std::iter::once((Role::Champion, &self.champion))
            .chain(self.challenger.iter().map(|c| (Role::Challenger, c)))
    }

    /// The served model called `name`.
    pub fn find(&self, name: &str) -> Option<(Role, &Arc<Served>)> {
        self.all().find(|(_, s)| s.name() == name)
    }
}

/// A learner id's position in [0, 1): FNV-1a, stable across processes and versions.
pub fn bucket(learner_id: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in learner_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly: finish with a multiply-xorshift.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Course id → (index, lessons), for raw-event instances.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub index: HashMap<String, u32>,
    pub lessons: Vec<u32>,
    /// Each course's end and deadlines, by index (the calendar features).
    pub calendar: churn_features::CourseCalendar,
}

impl Catalogue {
    /// The catalogue a model card records (the first of a repeated id
    /// counts); empty for a card of a plain table or an imported model.
    pub fn from_card(training: &churn_model::Training) -> Self {
        let mut catalogue = Catalogue::default();
        let Some(card) = training.catalogue() else {
            return catalogue;
        };
        // The first date of an id counts, as its first lessons do.
        fn by_id(dates: &[(String, i64)]) -> HashMap<&str, i64> {
            let mut map = HashMap::new();
            for (id, ms) in dates {
                map.entry(id.as_str()).or_insert(*ms);
            }
            map
        }
        let (ends, starts) = (by_id(&card.course_ends), by_id(&card.course_starts));
        for (id, lessons) in &card.courses {
            if !catalogue.index.contains_key(id) {
                catalogue
                    .index
                    .insert(id.clone(), catalogue.lessons.len() as u32);
                catalogue.lessons.push(*lessons);
                catalogue.calendar.ends.push(ends.get(id.as_str()).copied());
                catalogue
                    .calendar
                    .starts
                    .push(starts.get(id.as_str()).copied());
            }
        }
        catalogue
    }

    /// Adds the model's course deadlines (its card's `course_deadlines`) to
    /// the courses of this catalogue that have them.
    pub fn with_deadlines(mut self, training: &churn_model::Training) -> Self {
        let deadlines = training
            .catalogue()
            .map_or(&[][..], |c| &c.course_deadlines);
        for (id, due_at, event_type) in deadlines {
            let (Some(&course), Ok(event_type)) =
                (self.index.get(id), churn_core::EventType::parse(event_type))
            else {
                continue;
            };
            self.calendar.deadlines.push(churn_core::Deadline {
                course,
                due_at: *due_at,
                event_type,
            });
        }
        self
    }

    /// Reads a CSV with `course_id` and `lessons` columns, and `ends_at` and
    /// `starts_at` (RFC 3339, may be empty) when it has them (the data
    /// contract's courses.csv).
    pub fn read(path: &Path) -> Result<Self, ServeError> {
        let fail = |m: String| ServeError::Config(format!("courses {}: {m}", path.display()));
        let mut reader = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
        let headers = reader.headers().map_err(|e| fail(e.to_string()))?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| fail(format!("no {name} column")))
        };
        let (id, lessons) = (column("course_id")?, column("lessons")?);
        let ends_at = headers.iter().position(|h| h == "ends_at");
        let starts_at = headers.iter().position(|h| h == "starts_at");
        let mut catalogue = Catalogue::default();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| fail(e.to_string()))?;
            let course = record.get(id).unwrap_or("").to_owned();
            let count: u32 = record
                .get(lessons)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| fail(format!("row {}: lessons is not a whole number", row + 1)))?;
            let index = catalogue.lessons.len() as u32;
            if catalogue.index.insert(course.clone(), index).is_some() {
                return Err(fail(format!("row {}: course {course:?} twice", row + 1)));
            }
            catalogue.lessons.push(count);
            let time = |column: Option<usize>, name: &str| -> Result<Option<i64>, ServeError> {
                match column.and_then(|i| record.get(i)).map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(text) => churn_core::parse_timestamp(text)
                        .map(Some)
                        .map_err(|e| fail(format!("row {}: {name} {text:?}: {e}", row + 1))),
                }
            };
            catalogue.calendar.ends.push(time(ends_at, "ends_at")?);
            catalogue
                .calendar
                .starts
                .push(time(starts_at, "starts_at")?);
        }
        Ok(catalogue)
    }
}

/// The server's shared state.
pub struct AppState {
    pub config: ServeConfig,
    /// The scoring slots.
    pub admission: Arc<crate::middleware::Admission>,
    pub deployment: ArcSwap<Deployment>,
    pub telemetry: Telemetry,
    pub log: Option<PredictionLog>,
    /// The sampled feature log, when configured.
    pub feature_log: Option<PredictionLog>,
    /// One reload at a time.
    pub reload: tokio::sync::Mutex<()>,
    /// The learner store, when configured.
    pub store: Option<Arc<dyn churn_store::LearnerStore>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_come_from_a_csv_or_the_model_card() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("courses.csv");
        std::fs::write(&path, "course_id,title,lessons\nC1,a,12\nC2,b,7\n").unwrap();
        let csv = Catalogue::read(&path).unwrap();
        assert_eq!(csv.lessons[csv.index["C2"] as usize], 7);
        std::fs::write(&path, "course_id,lessons\nC1,12\nC1,3\n").unwrap();
        let err = Catalogue::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("courses.csv") && err.contains("twice"),
            "{err}"
        );
        std::fs::write(&path, "course_id,lessons\nC1,many\n").unwrap();
        assert!(
            Catalogue::read(&path)
                .unwrap_err()
                .to_string()
                .contains("row 1")
        );

        let card = serde_json::json!({
            "mode": "churn_data", "data": "d", "data_sha256": "0", "every": "14d",
            "horizon": "30d", "split": {}, "calibration": {}, "settings": {},
            "courses": [["C1", 12], ["C2", 7], ["C1", 3]],
        });
        let training: churn_model::Training = serde_json::from_value(card.clone()).unwrap();
        let from_card = Catalogue::from_card(&training);
        assert_eq!(
            from_card.lessons,
            vec![12, 7],
            "the first entry of a repeated id wins"
        );
        let mut without = card;
        without.as_object_mut().unwrap().remove("courses");
        let refused = serde_json::from_value::<churn_model::Training>(without).unwrap_err();
        assert!(
            refused.to_string().contains("missing field `courses`"),
            "a card without its catalogue does not load: {refused}"
        );
        let imported =
            churn_model::Training::ImportedLightgbm(churn_model::artifact::ImportedTraining {
                source: "model.txt".into(),
                source_sha256: "0".into(),
                reads_churn_features: true,
            });
        assert!(Catalogue::from_card(&imported).index.is_empty());
    }

    #[test]
    fn buckets_are_uniform_and_stable() {
        let n = 100_000;
        let below = (0..n).filter(|i| bucket(&format!("L{i:06}")) < 0.1).count();
        let share = below as f64 / n as f64;
        assert!(
            (share - 0.1).abs() < 4.0 * (0.09 / n as f64).sqrt(),
            "{share}"
        );
        // Fixed values (computed independently in Python): changing the hash
        // would move learners between champion and challenger.
        assert_eq!(bucket("L000001"), 0.6686276717542996);
        assert_eq!(bucket(""), 0.9247168271715233);
    }
}
