//! Feature and label definitions at an as-of time, and the single-learner path.
//!
//! **Architecture invariant:** everything here that looks at a learner at as-of
//! time `t` reads features only from events with `ts ≤ t` and labels only from
//! events with `ts > t`. No polars: the server links this crate; the batch table
//! (`churn-table`) runs these same definitions per learner.

mod compute;
pub mod examples;
mod feature_set;
pub mod label;
pub mod registry;

pub use compute::{
    FeatureRow, NEW_LEARNER_DAYS, Profile, SortedEvents, UnsortedEvents, compute, lifecycle_stage,
};
pub use examples::{Example, Grouped, SnapshotPlan, SnapshotSpec};
pub use feature_set::{
    CourseCalendar, DAYS_SINCE_COURSE_START, DAYS_TO_COURSE_END, DAYS_TO_NEXT_DEADLINE,
    DEADLINES_MISSED, DEFAULT_CUSTOM_TYPES, FEATURES_PER_CUSTOM_TYPE, Feature, FeatureLayout,
    FeatureSet, FeatureSetError,
};
pub use registry::{CATEGORICAL, FeatureDef, Group, Kind, NUMERIC};
