//! The data-dependent part of a feature vector: generic features of a
//! platform's own (custom) event types and its learner attributes.
//!
//! The registry's 37 features are the same for every dataset. A real
//! platform's data adds what the registry cannot know: event types of its own
//! (`video_play`, OULAD's `oucontent`) and learner attributes (demographics,
//! a study load). A [`FeatureSet`] names the ones a model reads. It is chosen
//! once, from the training data ([`FeatureSet::choose`]), and recorded on the
//! model card, so the batch table, training, `churn predict`, the server and
//! the monitor compute exactly the same columns.
//!
//! When the data has a course calendar (courses with an end), the set also
//! holds `days_to_course_end`: where a learner stands in the course decides
//! much of what happens next (OULAD's withdrawals), and only the calendar
//! knows it.
//!
//! Column order: the registry's numeric features, then four per custom type
//! (in the set's order), then `days_to_course_end` (with a calendar), then
//! the numeric attributes; the registry's categorical features, then the
//! categorical attributes.

use std::collections::HashMap;
use std::fmt;

use churn_core::{Dataset, LearnerAttributes, parse_event_type};
use serde::{Deserialize, Serialize};

use crate::registry::{self, Group, Kind};

/// The calendar feature's name.
pub const DAYS_TO_COURSE_END: &str = "days_to_course_end";
/// The course start feature's name.
pub const DAYS_SINCE_COURSE_START: &str = "days_since_course_start";
/// The deadline features' names.
pub const DEADLINES_MISSED: &str = "deadlines_missed";
pub const DAYS_TO_NEXT_DEADLINE: &str = "days_to_next_deadline";

/// What the calendar features read of a data source's courses, by course
/// index: ends, and deadlines (due time, the event that meets it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseCalendar {
    pub ends: Vec<Option<i64>>,
    pub starts: Vec<Option<i64>>,
    pub deadlines: Vec<churn_core::Deadline>,
}

impl CourseCalendar {
    /// The calendar of a dataset.
    pub fn of(dataset: &Dataset) -> Self {
        CourseCalendar {
            ends: dataset.courses.iter().map(|c| c.ends_at).collect(),
            starts: dataset.courses.iter().map(|c| c.starts_at).collect(),
            deadlines: dataset.deadlines.clone(),
        }
    }
}

/// Default number of custom event types given features ([`FeatureSet::choose`]).
pub const DEFAULT_CUSTOM_TYPES: usize = 16;

/// Features per custom event type.
pub const FEATURES_PER_CUSTOM_TYPE: usize = 4;

/// A feature set that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature set: {0}")]
pub struct FeatureSetError(pub String);

/// One feature of a data-dependent list (the registry's are `&'static`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub group: Group,
    pub kind: Kind,
    pub description: String,
}

impl From<&registry::FeatureDef> for Feature {
    fn from(f: &registry::FeatureDef) -> Self {
        Feature {
            name: f.name.to_owned(),
            group: f.group,
            kind: f.kind,
            description: f.description.to_owned(),
        }
    }
}

/// The custom event types and learner attributes a model reads, besides the
/// registry. Checked at construction: names valid and every column name
/// distinct from the registry's and each other's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FeatureSetFields", into = "FeatureSetFields")]
pub struct FeatureSet {
    custom_types: Vec<String>,
    calendar: bool,
    starts: bool,
    deadlines: bool,
    attributes: LearnerAttributes,
}

/// The serialised form (checked into a [`FeatureSet`] when read).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureSetFields {
    #[serde(default)]
    custom_event_types: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    course_calendar: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    course_starts: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    course_deadlines: bool,
    #[serde(default)]
    learner_attributes: LearnerAttributes,
}

impl TryFrom<FeatureSetFields> for FeatureSet {
    type Error = FeatureSetError;
    fn try_from(f: FeatureSetFields) -> Result<Self, Self::Error> {
        Ok(FeatureSet::new(f.custom_event_types, f.learner_attributes)?
            .with_calendar(f.course_calendar)
            .with_starts(f.course_starts)
            .with_deadlines(f.course_deadlines))
    }
}

impl From<FeatureSet> for FeatureSetFields {
    fn from(s: FeatureSet) -> Self {
        FeatureSetFields {
            custom_event_types: s.custom_types,
            course_calendar: s.calendar,
            course_starts: s.starts,
            course_deadlines: s.deadlines,
            learner_attributes: s.attributes,
        }
    }
}

/// A custom type's name as it appears in a column name (`.`, `-`, `:` → `_`).
fn column_stem(event_type: &str) -> String {
    event_type
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn custom_features(event_type: &str) -> [Feature; FEATURES_PER_CUSTOM_TYPE] {
    let stem = column_stem(event_type);
    let numeric = |name: String, group: Group, description: String| Feature {
        name,
        group,
        kind: Kind::Numeric,
        description,
    };
    [
        numeric(
            format!("{stem}_count_7d"),
            Group::Frequency,
            format!("{event_type} in the last 7 days"),
        ),
        numeric(
            format!("{stem}_count_30d"),
            Group::Frequency,
            format!("{event_type} in the last 30 days"),
        ),
        numeric(
            format!("{stem}_active_days_30d"),
            Group::Frequency,
            format!("days with {event_type} in the last 30"),
        ),
        numeric(
            format!("days_since_{stem}"),
            Group::Recency,
            format!("days since the last {event_type}"),
        ),
    ]
}

impl FeatureSet {
    /// A feature set of these custom event types (in this order) and learner
    /// attributes.
    pub fn new(
        custom_types: Vec<String>,
        attributes: LearnerAttributes,
    ) -> Result<Self, FeatureSetError> {
        for name in &custom_types {
            match parse_event_type(name) {
                Ok(Err(_)) => {}
                Ok(Ok(_)) => {
                    return Err(FeatureSetError(format!(
                        "{name:?} is a known event type; its features are the registry's"
                    )));
                }
                Err(e) => return Err(FeatureSetError(e.to_string())),
            }
        }
        attributes.check().map_err(FeatureSetError)?;
        let set = FeatureSet {
            custom_types,
            calendar: false,
            starts: false,
            deadlines: false,
            attributes,
        };
        let mut seen = std::collections::HashSet::new();
        for f in set.features() {
            if !seen.insert(f.name.clone()) {
                return Err(FeatureSetError(format!(
                    "two features would be named {:?} (a custom event type or learner attribute takes the name of another feature)",
                    f.name
                )));
            }
        }
        Ok(set)
    }

    /// The set for `dataset`: its `max_custom_types` most frequent custom
    /// event types (by occurrences, `count` included; ties by name) and
    /// every learner attribute it declares. A type whose column names would
    /// clash with another feature's is passed over.
    ///
    /// Only type frequencies are read, never labels; a model trained on the
    /// dataset records the choice, so later data is read with the same set.
    /// With a course calendar (some course has an end), `days_to_course_end`
    /// too.
    pub fn choose(dataset: &Dataset, max_custom_types: usize) -> Result<Self, FeatureSetError> {
        let mut occurrences = vec![0u64; dataset.custom_event_types.len()];
        churn_core::count_custom_occurrences(&dataset.events, &mut occurrences);
        Ok(Self::choose_by_occurrences(
            &dataset.custom_event_types,
            &occurrences,
            &dataset.attributes,
            max_custom_types,
        )?
        .with_calendar_of(dataset))
    }

    /// This set with the course-calendar features `dataset` can feed: the
    /// days to a course's end when some course has an end, since a course's
    /// start when some has a start, and the deadline features when it has
    /// deadlines.
    pub fn with_calendar_of(self, dataset: &Dataset) -> Self {
        self.with_calendar(dataset.courses.iter().any(|c| c.ends_at.is_some()))
            .with_starts(dataset.courses.iter().any(|c| c.starts_at.is_some()))
            .with_deadlines(!dataset.deadlines.is_empty())
    }

    /// This set with (or without) `days_since_course_start`.
    pub fn with_starts(mut self, starts: bool) -> Self {
        self.starts = starts;
        self
    }

    /// This set with (or without) `deadlines_missed` and
    /// `days_to_next_deadline`.
    pub fn with_deadlines(mut self, deadlines: bool) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// This set with (or without) `days_to_course_end`.
    pub fn with_calendar(mut self, calendar: bool) -> Self {
        self.calendar = calendar;
        self
    }

    /// Whether the set reads the course calendar (`days_to_course_end`).
    pub fn calendar(&self) -> bool {
        self.calendar
    }

    /// [`Self::choose`] from occurrences already counted (by custom type
    /// index, see `churn_core::count_custom_occurrences`): for data read in
    /// parts.
    pub fn choose_by_occurrences(
        custom_event_types: &[String],
        occurrences: &[u64],
        attributes: &LearnerAttributes,
        max_custom_types: usize,
    ) -> Result<Self, FeatureSetError> {
        let mut ranked: Vec<(u64, &String)> = occurrences
            .iter()
            .copied()
            .zip(custom_event_types)
            .filter(|(n, _)| *n > 0)
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let mut set = FeatureSet::new(Vec::new(), attributes.clone())?;
        for (_, name) in ranked {
            if set.custom_types.len() == max_custom_types {
                break;
            }
            let mut wider = set.custom_types.clone();
            wider.push(name.clone());
            if let Ok(accepted) = FeatureSet::new(wider, set.attributes.clone()) {
                set = accepted;
            }
        }
        Ok(set)
    }

    /// The set that adds nothing: the registry's features alone.
    pub fn none() -> &'static FeatureSet {
        static NONE: FeatureSet = FeatureSet {
            custom_types: Vec::new(),
            calendar: false,
            starts: false,
            deadlines: false,
            attributes: LearnerAttributes {
                numeric: Vec::new(),
                categorical: Vec::new(),
            },
        };
        &NONE
    }

    /// Whether the set adds nothing to the registry.
    pub fn is_empty(&self) -> bool {
        self.custom_types.is_empty()
            && !self.calendar
            && !self.starts
            && !self.deadlines
            && self.attributes.is_empty()
    }

    /// The custom event types given features, in column order.
    pub fn custom_types(&self) -> &[String] {
        &self.custom_types
    }

    /// The learner attributes read, in column order.
    pub fn attributes(&self) -> &LearnerAttributes {
        &self.attributes
    }

    /// Number of numeric features: the registry's and the set's.
    pub fn numeric_len(&self) -> usize {
        registry::NUMERIC_COUNT
            + FEATURES_PER_CUSTOM_TYPE * self.custom_types.len()
            + usize::from(self.calendar)
            + usize::from(self.starts)
            + 2 * usize::from(self.deadlines)
            + self.attributes.numeric.len()
    }

    /// Number of categorical features: the registry's and the set's.
    pub fn categorical_len(&self) -> usize {
        registry::CATEGORICAL_COUNT + self.attributes.categorical.len()
    }

    /// Every feature, in column order: numeric ones, then categorical ones.
    pub fn features(&self) -> Vec<Feature> {
        let mut out: Vec<Feature> = registry::NUMERIC.iter().map(Feature::from).collect();
        out.extend(self.custom_types.iter().flat_map(|t| custom_features(t)));
        if self.calendar {
            out.push(Feature {
                name: DAYS_TO_COURSE_END.to_owned(),
                group: Group::Progress,
                kind: Kind::Numeric,
                description: "days until the learner's courses end".to_owned(),
            });
        }
        if self.starts {
            out.push(Feature {
                name: DAYS_SINCE_COURSE_START.to_owned(),
                group: Group::Progress,
                kind: Kind::Numeric,
                description: "days since the learner's latest course started".to_owned(),
            });
        }
        if self.deadlines {
            out.push(Feature {
                name: DEADLINES_MISSED.to_owned(),
                group: Group::Progress,
                kind: Kind::Numeric,
                description:
                    "deadlines of the learner's courses passed without the event that meets them"
                        .to_owned(),
            });
            out.push(Feature {
                name: DAYS_TO_NEXT_DEADLINE.to_owned(),
                group: Group::Progress,
                kind: Kind::Numeric,
                description: "days until the next deadline of the learner's courses".to_owned(),
            });
        }
        out.extend(self.attributes.numeric.iter().map(|name| Feature {
            name: name.clone(),
            group: Group::Profile,
            kind: Kind::Numeric,
            description: format!("learner attribute {name}"),
        }));
        out.extend(registry::CATEGORICAL.iter().map(Feature::from));
        out.extend(self.attributes.categorical.iter().map(|name| Feature {
            name: name.clone(),
            group: Group::Profile,
            kind: Kind::Categorical,
            description: format!("learner attribute {name}"),
        }));
        out
    }

    /// How data whose custom event types are `custom_event_types` (indexed
    /// as `EventKind::Custom { index }` reads them), whose learners carry
    /// `attributes` and whose courses end at `course_ends` (by course index)
    /// feeds this set. Types and attributes the data lacks give missing
    /// values (zero counts for a type: it never happened).
    pub fn layout(
        &self,
        custom_event_types: &[String],
        attributes: &LearnerAttributes,
        calendar: &CourseCalendar,
    ) -> FeatureLayout {
        let mut deadlines: Vec<Vec<(i64, churn_core::EventType)>> = Vec::new();
        if self.deadlines {
            for d in &calendar.deadlines {
                let course = d.course as usize;
                if deadlines.len() <= course {
                    deadlines.resize_with(course + 1, Vec::new);
                }
                deadlines[course].push((d.due_at, d.event_type));
            }
            for list in &mut deadlines {
                list.sort_unstable();
            }
        }
        let slot_of: HashMap<&str, u16> = self
            .custom_types
            .iter()
            .enumerate()
            .map(|(slot, name)| (name.as_str(), slot as u16))
            .collect();
        let position = |names: &[String], name: &String| names.iter().position(|n| n == name);
        FeatureLayout {
            custom_slot: custom_event_types
                .iter()
                .map(|name| slot_of.get(name.as_str()).copied().unwrap_or(NO_SLOT))
                .collect(),
            custom_types: self.custom_types.len(),
            course_ends: self.calendar.then(|| calendar.ends.clone()),
            course_starts: self.starts.then(|| calendar.starts.clone()),
            deadlines: self.deadlines.then_some(deadlines),
            numeric_attributes: self
                .attributes
                .numeric
                .iter()
                .map(|name| position(&attributes.numeric, name))
                .collect(),
            categorical_attributes: self
                .attributes
                .categorical
                .iter()
                .map(|name| position(&attributes.categorical, name))
                .collect(),
        }
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} custom event types ({}), {} numeric and {} categorical learner attributes",
            self.custom_types.len(),
            self.custom_types.join(", "),
            self.attributes.numeric.len(),
            self.attributes.categorical.len()
        )
    }
}

const NO_SLOT: u16 = u16::MAX;

/// A [`FeatureSet`] bound to one source of events and learners: which slot
/// each custom type index fills, and where each attribute sits in a learner's
/// values. Built once per dataset (or served model), read per learner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureLayout {
    /// By custom event index: the set's slot, or `NO_SLOT`.
    custom_slot: Vec<u16>,
    custom_types: usize,
    /// With the calendar feature: each course's end, by course index.
    course_ends: Option<Vec<Option<i64>>>,
    /// With the start feature: each course's start, by course index.
    course_starts: Option<Vec<Option<i64>>>,
    /// With the deadline features: each course's deadlines, by course
    /// index, sorted by due time.
    deadlines: Option<Vec<Vec<(i64, churn_core::EventType)>>>,
    /// By the set's numeric attribute: its position in the learner's values.
    numeric_attributes: Vec<Option<usize>>,
    categorical_attributes: Vec<Option<usize>>,
}

impl FeatureLayout {
    /// The set's slot of the custom event type of index `index`.
    pub(crate) fn custom_slot(&self, index: u16) -> Option<usize> {
        self.custom_slot
            .get(usize::from(index))
            .filter(|&&s| s != NO_SLOT)
            .map(|&s| usize::from(s))
    }

    /// Number of custom event types given features.
    pub(crate) fn custom_types(&self) -> usize {
        self.custom_types
    }

    /// With the calendar feature: each course's end, by course index.
    pub(crate) fn course_ends(&self) -> Option<&[Option<i64>]> {
        self.course_ends.as_deref()
    }

    /// With the start feature: each course's start, by course index.
    pub(crate) fn course_starts(&self) -> Option<&[Option<i64>]> {
        self.course_starts.as_deref()
    }

    /// With the deadline features: each course's deadlines, by course index.
    pub(crate) fn deadlines(&self) -> Option<&[Vec<(i64, churn_core::EventType)>]> {
        self.deadlines.as_deref()
    }

    /// The set's numeric attributes, read from a learner's values.
    pub(crate) fn numeric_attributes<'s, 'v>(
        &'s self,
        values: &'v [f64],
    ) -> impl Iterator<Item = f64> + use<'s, 'v> {
        self.numeric_attributes
            .iter()
            .map(|p| p.and_then(|p| values.get(p).copied()).unwrap_or(f64::NAN))
    }

    /// The set's categorical attributes, read from a learner's values.
    pub(crate) fn categorical_attributes<'s, 'v>(
        &'s self,
        values: &'v [Option<String>],
    ) -> impl Iterator<Item = Option<&'v str>> + use<'s, 'v> {
        self.categorical_attributes
            .iter()
            .map(|p| p.and_then(|p| values.get(p)).and_then(|v| v.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::{Event, EventKind, EventType};

    fn attributes(numeric: &[&str], categorical: &[&str]) -> LearnerAttributes {
        LearnerAttributes {
            numeric: numeric.iter().map(|s| s.to_string()).collect(),
            categorical: categorical.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn columns_follow_the_registry_then_types_then_attributes() {
        let set = FeatureSet::new(
            vec!["video.play".into()],
            attributes(&["credits"], &["region"]),
        )
        .unwrap();
        let names: Vec<String> = set.features().into_iter().map(|f| f.name).collect();
        let n = registry::NUMERIC_COUNT;
        assert_eq!(names.len(), set.numeric_len() + set.categorical_len());
        assert_eq!(
            names[n..n + 5],
            [
                "video_play_count_7d",
                "video_play_count_30d",
                "video_play_active_days_30d",
                "days_since_video_play",
                "credits"
            ]
        );
        assert_eq!(names.last().map(String::as_str), Some("region"));
        assert_eq!(set.numeric_len(), n + 5);
        let with_calendar = set.clone().with_calendar(true);
        let names: Vec<String> = with_calendar
            .features()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names[n + 4..n + 6], [DAYS_TO_COURSE_END, "credits"]);
        assert_eq!(with_calendar.numeric_len(), n + 6);
        let json = serde_json::to_string(&with_calendar).unwrap();
        assert_eq!(
            serde_json::from_str::<FeatureSet>(&json).unwrap(),
            with_calendar
        );
    }

    #[test]
    fn refuses_clashing_or_invalid_names() {
        let clash = FeatureSet::new(vec!["a.b".into(), "a-b".into()], attributes(&[], &[]));
        assert!(clash.unwrap_err().0.contains("a_b_count_7d"));
        let registry_name = FeatureSet::new(vec![], attributes(&["tenure_days"], &[]));
        assert!(registry_name.unwrap_err().0.contains("tenure_days"));
        assert!(FeatureSet::new(vec!["login".into()], attributes(&[], &[])).is_err());
        assert!(FeatureSet::new(vec!["Bad Name".into()], attributes(&[], &[])).is_err());
    }

    #[test]
    fn choose_takes_the_most_frequent_types_counting_occurrences() {
        let event = |index: u16, count: u32| Event {
            event_type: EventKind::Custom {
                index,
                activity: true,
            },
            count,
            ..Event::new(0, 0, EventType::Login)
        };
        let dataset = Dataset {
            custom_event_types: vec!["alpha".into(), "beta".into(), "gamma".into()],
            // alpha: 3 rows of 1; beta: 1 row of 10; gamma: 3 rows of 1 (tie with alpha).
            events: vec![
                event(0, 1),
                event(0, 1),
                event(0, 1),
                event(1, 10),
                event(2, 1),
                event(2, 1),
                event(2, 1),
            ],
            ..Dataset::default()
        };
        let set = FeatureSet::choose(&dataset, 2).unwrap();
        assert_eq!(set.custom_types(), ["beta", "alpha"]);
        let layout = set.layout(
            &dataset.custom_event_types,
            &dataset.attributes,
            &CourseCalendar::default(),
        );
        assert_eq!(
            (
                layout.custom_slot(0),
                layout.custom_slot(1),
                layout.custom_slot(2)
            ),
            (Some(1), Some(0), None)
        );
        assert_eq!(layout.custom_slot(u16::MAX), None);
    }

    #[test]
    fn round_trips_through_json_and_checks_what_it_reads() {
        let set = FeatureSet::new(vec!["quiz".into()], attributes(&["x"], &["y"])).unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(serde_json::from_str::<FeatureSet>(&json).unwrap(), set);
        let bad = r#"{"custom_event_types":["login"]}"#;
        assert!(serde_json::from_str::<FeatureSet>(bad).is_err());
    }
}
