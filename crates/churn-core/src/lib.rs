//! The data contract of churn as plain Rust types.
//!
//! Every other crate speaks these types: the loader (`churn-data`) produces a
//! [`Dataset`], the simulator (`churn-sim`) generates one, the feature code
//! (`churn-features`) reads one learner's [`Event`]s from it. Nothing here
//! reads or writes data or depends on polars, so the server can use it too;
//! the one file-system helper, [`create_dir_all`], lives here so that every
//! crate that writes output reports a bad output path the same way.

mod fs;
mod schema;
mod time;

pub use fs::{commit_file, create_dir_all, publish_dir, temporary_sibling, write_atomically};
pub use schema::{
    ATTRIBUTE_NAME_MAX_LEN, Assignment, BadEventType, CUSTOM_EVENT_TYPE_MAX_LEN, Course, Dataset,
    Deadline, Event, EventKind, EventType, LEARNER_COLUMNS, LabelDefinition, Learner,
    LearnerAttributes, Level, NO_COURSE, ParseEnumError, Plan, Table, count_custom_occurrences,
    parse_category, parse_event_type,
};
pub use time::{
    DAY_MS, HOUR_MS, TimestampError, format_timestamp, now_ms, parse_duration, parse_timestamp,
};
