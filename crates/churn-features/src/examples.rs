//! Examples: a learner at an as-of time, with its features and label, at
//! rolling as-of times ([`SnapshotSpec`] → [`SnapshotPlan`]), computed from a
//! dataset grouped by learner ([`Grouped`]). The batch table, training,
//! scoring, the A/B readout and the monitor all take their examples from here,
//! so "which learners are examples at `t`, and what is their label" has one
//! answer.

use churn_core::{DAY_MS, Dataset, Event, LabelDefinition, format_timestamp};
use rayon::prelude::*;

use crate::label::{LabelStatus, finished_at, label_status_in_calendar};
use crate::{FeatureLayout, FeatureRow, FeatureSet, Profile, SortedEvents, compute};

/// What is wrong with the as-of times asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("invalid snapshot plan: {0}")]
    Plan(String),
    #[error("the dataset has no events, so there is nothing to take snapshots of")]
    NoEvents,
}

/// The as-of times asked for; unset bounds are derived from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// First as-of time (ms). Default: the earliest snapshot, stepping back
    /// from `to` by `every`, that has `horizon` of history behind it.
    pub from: Option<i64>,
    /// Last as-of time (ms). Default: the end of the data, floored to 00:00 UTC.
    pub to: Option<i64>,
    /// Spacing of the as-of times (ms).
    pub every: i64,
    /// Label horizon (ms).
    pub horizon: i64,
    /// Last time the data covers (ms). Default: the latest event.
    pub data_end: Option<i64>,
    /// What "churned" means.
    pub label: LabelDefinition,
}

impl SnapshotSpec {
    /// Rolling snapshots every 14 days with a 30-day horizon.
    pub fn every_14_days() -> Self {
        SnapshotSpec {
            from: None,
            to: None,
            every: 14 * DAY_MS,
            horizon: 30 * DAY_MS,
            data_end: None,
            label: LabelDefinition::Either,
        }
    }

    /// Checks the spec against a dataset and lists the as-of times.
    pub fn resolve(&self, dataset: &Dataset) -> Result<SnapshotPlan, SnapshotError> {
        let first = dataset.events.iter().map(|e| e.ts).min();
        let last = dataset.last_event_time();
        self.resolve_for_span(first.zip(last))
    }

    /// Checks the spec given the earliest and latest event time of the data.
    pub fn resolve_for_span(
        &self,
        event_span: Option<(i64, i64)>,
    ) -> Result<SnapshotPlan, SnapshotError> {
        if self.every <= 0 || self.horizon <= 0 {
            return Err(SnapshotError::Plan(
                "--every and --horizon must be positive".into(),
            ));
        }
        let Some((first_event, last_event)) = event_span else {
            return Err(SnapshotError::NoEvents);
        };
        let data_end = self.data_end.unwrap_or(last_event);
        let to = self.to.unwrap_or(data_end.div_euclid(DAY_MS) * DAY_MS);
        let from = match self.from {
            Some(from) => from,
            None => {
                let earliest = first_event.saturating_add(self.horizon);
                let steps = (to - earliest).max(0) / self.every;
                to - steps * self.every
            }
        };
        if from > to {
            return Err(SnapshotError::Plan(format!(
                "--from {} is after --to {}",
                format_timestamp(from),
                format_timestamp(to)
            )));
        }
        let times: Vec<i64> = (0..)
            .map(|k: i64| from + k * self.every)
            .take_while(|&t| t <= to)
            .collect();
        Ok(SnapshotPlan {
            times,
            horizon: self.horizon,
            data_end,
            label: self.label,
        })
    }
}

/// Checked as-of times, horizon and end of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPlan {
    times: Vec<i64>,
    horizon: i64,
    data_end: i64,
    label: LabelDefinition,
}

impl SnapshotPlan {
    /// The as-of times, ascending.
    pub fn times(&self) -> &[i64] {
        &self.times
    }

    /// The label horizon (ms).
    pub fn horizon(&self) -> i64 {
        self.horizon
    }

    /// The last time the data covers (ms): later horizons are unlabelled.
    pub fn data_end(&self) -> i64 {
        self.data_end
    }

    /// What "churned" means.
    pub fn label(&self) -> LabelDefinition {
        self.label
    }
}

/// One example: a learner at an as-of time.
#[derive(Debug, Clone, PartialEq)]
pub struct Example<'a> {
    /// Index into `dataset.learners`.
    pub learner: u32,
    pub as_of: i64,
    /// `None` when the horizon runs past the end of the data.
    pub churned: Option<bool>,
    pub features: FeatureRow<'a>,
}

/// A dataset whose events are sorted by (learner, time): what computing
/// examples needs, built once.
pub struct Grouped<'a> {
    dataset: &'a Dataset,
    /// Learner `l` owns `events[starts[l]..starts[l + 1]]`.
    starts: Vec<usize>,
    course_lessons: Vec<u32>,
    /// Each course's end, by course index, when some course has one.
    course_ends: Option<Vec<Option<i64>>>,
    /// The feature set's columns beyond the registry (none by default).
    layout: FeatureLayout,
}

impl<'a> Grouped<'a> {
    /// Sorts the events by learner, then into the canonical order, in place.
    pub fn new(dataset: &'a mut Dataset) -> Self {
        let events = &mut dataset.events;
        let order = |a: &Event, b: &Event| a.learner.cmp(&b.learner).then(a.canonical_cmp(b));
        // Unstable, so in place: events equal in this order are equal in
        // every field the features read (the order compares them all).
        if !events.par_windows(2).all(|w| order(&w[0], &w[1]).is_le()) {
            events.par_sort_unstable_by(order);
        }
        let starts = (0..=dataset.learners.len() as u32)
            .map(|l| events.partition_point(|e| e.learner < l))
            .collect();
        let dataset = &*dataset;
        Grouped {
            dataset,
            starts,
            course_lessons: dataset.courses.iter().map(|c| c.lessons).collect(),
            course_ends: dataset
                .courses
                .iter()
                .any(|c| c.ends_at.is_some())
                .then(|| dataset.courses.iter().map(|c| c.ends_at).collect()),
            layout: FeatureLayout::default(),
        }
    }

    /// Computes the columns of `set` too (custom event types, learner
    /// attributes), read from this dataset's types and learners.
    pub fn with_features(mut self, set: &FeatureSet) -> Self {
        self.layout = set.layout(
            &self.dataset.custom_event_types,
            &self.dataset.attributes,
            &crate::CourseCalendar::of(self.dataset),
        );
        self
    }

    /// How this dataset feeds the feature set (see [`Self::with_features`]).
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    /// The dataset.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// Learner `l`'s events, sorted by time (empty for an unknown index).
    pub fn events_of(&self, l: u32) -> &'a [Event] {
        let l = l as usize;
        match (self.starts.get(l), self.starts.get(l + 1)) {
            (Some(&from), Some(&to)) => &self.dataset.events[from..to],
            _ => &[],
        }
    }

    /// The examples at prediction points (learner index, as-of time), in the
    /// order given, computed in parallel: `None` where the learner is not an
    /// example at that time (not signed up yet, already gone, finished). The
    /// plan gives the horizon, the end of the data and the label; its
    /// as-of times are not read.
    pub fn examples_at(
        &self,
        points: &[(u32, i64)],
        plan: &SnapshotPlan,
    ) -> Vec<Option<Example<'a>>> {
        let context = ExampleContext {
            plan,
            course_lessons: &self.course_lessons,
            calendar: self.course_ends.as_deref(),
            layout: &self.layout,
        };
        points
            .par_iter()
            .map(|&(learner, t)| context.example(self.dataset, learner, self.events_of(learner), t))
            .collect()
    }

    /// The examples of `learners` at the plan's as-of times, computed in
    /// parallel, one list per learner in the order given.
    pub fn examples(&self, learners: &[u32], plan: &SnapshotPlan) -> Vec<Vec<Example<'a>>> {
        learners
            .par_iter()
            .map(|&l| {
                let events =
                    &self.dataset.events[self.starts[l as usize]..self.starts[l as usize + 1]];
                learner_examples(
                    self.dataset,
                    l,
                    events,
                    plan,
                    &self.course_lessons,
                    self.course_ends.as_deref(),
                    &self.layout,
                )
            })
            .collect()
    }
}

/// The examples of one learner at every as-of time of the plan.
pub fn learner_examples<'a>(
    dataset: &'a Dataset,
    learner: u32,
    events: &[Event],
    plan: &SnapshotPlan,
    course_lessons: &[u32],
    calendar: Option<&[Option<i64>]>,
    layout: &FeatureLayout,
) -> Vec<Example<'a>> {
    let context = ExampleContext {
        plan,
        course_lessons,
        calendar,
        layout,
    };
    plan.times
        .iter()
        .filter_map(|&t| context.example(dataset, learner, events, t))
        .collect()
}

/// What an example at one (learner, time) needs besides the learner.
struct ExampleContext<'p> {
    plan: &'p SnapshotPlan,
    course_lessons: &'p [u32],
    calendar: Option<&'p [Option<i64>]>,
    layout: &'p FeatureLayout,
}

impl ExampleContext<'_> {
    /// The example of `learner` (whose `events` these are) at `t`, if the
    /// learner is one there.
    fn example<'a>(
        &self,
        dataset: &'a Dataset,
        learner: u32,
        events: &[Event],
        t: i64,
    ) -> Option<Example<'a>> {
        let profile = Profile::from(dataset.learners.get(learner as usize)?);
        // Grouped events are in canonical order, so this never fails; an
        // unsorted slice would give wrong windows, so refuse it rather than guess.
        let sorted = SortedEvents::check(events).ok()?;
        let plan = self.plan;
        let finished = self.calendar.and_then(|ends| finished_at(events, t, ends));
        let status = label_status_in_calendar(
            plan.label,
            profile.signup_at,
            events,
            t,
            plan.horizon,
            plan.data_end,
            finished,
        );
        let churned = match status {
            LabelStatus::NotEligible(_) => return None,
            LabelStatus::Unlabelled => None,
            LabelStatus::Labelled { churned } => Some(churned),
        };
        Some(Example {
            learner,
            as_of: t,
            churned,
            features: compute(&profile, sorted, t, self.course_lessons, self.layout),
        })
    }
}
