//! Tables of the data contract (DESIGN.md "Input data contract") as typed rows.

use std::fmt;

/// A value that is not one of an enum's allowed spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (allowed: {allowed})")]
pub struct ParseEnumError {
    /// The enum's name, e.g. `plan`.
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// The allowed spellings, comma separated.
    pub allowed: String,
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order (the order is part of the contract:
            /// it gives the stable integer codes used by features and models).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in files and APIs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the exact spelling used in files and APIs.
            pub fn parse(text: &str) -> Result<Self, ParseEnumError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        what: $what,
                        value: text.to_owned(),
                        allowed: [$($text),+].join(", "),
                    }),
                }
            }

            /// Position in [`Self::ALL`].
            pub fn code(self) -> u8 {
                self as u8
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Subscription plan of a learner.
    Plan, "plan", { Free => "free", Monthly => "monthly", Annual => "annual" }
);

text_enum!(
    /// Difficulty level of a course.
    Level, "level", { Beginner => "beginner", Intermediate => "intermediate", Advanced => "advanced" }
);

text_enum!(
    /// What happened in one event row.
    EventType, "event_type", {
        Login => "login",
        VideoWatch => "video_watch",
        LessonComplete => "lesson_complete",
        QuizAttempt => "quiz_attempt",
        ForumPost => "forum_post",
        Checkin => "checkin",
        LiveClass => "live_class",
        RefundPageView => "refund_page_view",
        SupportTicket => "support_ticket",
        Payment => "payment",
        CourseEnroll => "course_enroll",
        CouponRedeem => "coupon_redeem",
        SubscriptionCancel => "subscription_cancel",
    }
);

impl EventType {
    /// Activity events keep a learner "present" (DESIGN.md "Features and labels").
    /// Refund-page views, tickets, payments, enrolments, coupons and cancellations
    /// are signals, not activity.
    pub fn is_activity(self) -> bool {
        matches!(
            self,
            EventType::Login
                | EventType::VideoWatch
                | EventType::LessonComplete
                | EventType::QuizAttempt
                | EventType::ForumPost
                | EventType::Checkin
                | EventType::LiveClass
        )
    }
}

/// What an event row says happened: one of the 13 known types (fixed
/// semantics) or a custom type of the platform's own (DESIGN.md "Bring your
/// own data").
///
/// A custom type is an index into the names its dataset or model lists
/// ([`Dataset::custom_event_types`]), and carries whether it counts as
/// activity: that is data (`contract.toml`), so it is decided where the event
/// is read, once, and every rule downstream asks [`EventKind::is_activity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// One of the contract's known types.
    Known(EventType),
    /// A platform's own type.
    Custom {
        /// Index into the list of custom type names it was read against.
        index: u16,
        /// Whether it keeps a learner present, like the known activity types.
        activity: bool,
    },
}

impl EventKind {
    /// Whether the event keeps a learner "present" (DESIGN.md "Features and labels").
    pub fn is_activity(self) -> bool {
        match self {
            EventKind::Known(t) => t.is_activity(),
            EventKind::Custom { activity, .. } => activity,
        }
    }

    /// The known type, `None` for a custom one.
    pub fn known(self) -> Option<EventType> {
        match self {
            EventKind::Known(t) => Some(t),
            EventKind::Custom { .. } => None,
        }
    }

    /// A total order used to sort events that share a timestamp: known types
    /// in contract order, then custom ones by index.
    pub fn rank(self) -> u32 {
        match self {
            EventKind::Known(t) => u32::from(t.code()),
            EventKind::Custom { index, .. } => EventType::ALL.len() as u32 + u32::from(index),
        }
    }
}

impl From<EventType> for EventKind {
    fn from(t: EventType) -> Self {
        EventKind::Known(t)
    }
}

impl PartialEq<EventType> for EventKind {
    fn eq(&self, other: &EventType) -> bool {
        *self == EventKind::Known(*other)
    }
}

/// Longest custom event type name, in bytes.
pub const CUSTOM_EVENT_TYPE_MAX_LEN: usize = 64;

/// Why a name cannot be a custom event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a known event type nor a valid custom one (1 to 64 characters among a-z, 0-9, _ . - :, starting with a letter; known: {known})"
)]
pub struct BadEventType {
    /// The rejected text.
    pub value: String,
    /// The known types, comma separated.
    pub known: String,
}

/// Reads an `event_type` value: a known type, or else the name of a custom
/// one (lower-case ASCII letters, digits, `_ . - :`, starting with a letter,
/// at most [`CUSTOM_EVENT_TYPE_MAX_LEN`] bytes: names that are safe in a
/// feature name, a column name and a URL).
pub fn parse_event_type(text: &str) -> Result<Result<EventType, &str>, BadEventType> {
    if let Ok(t) = EventType::parse(text) {
        return Ok(Ok(t));
    }
    let valid = !text.is_empty()
        && text.len() <= CUSTOM_EVENT_TYPE_MAX_LEN
        && text.as_bytes()[0].is_ascii_lowercase()
        && text.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-' | b':')
        });
    if valid {
        Ok(Err(text))
    } else {
        Err(BadEventType {
            value: text.to_owned(),
            known: EventType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Reads an open-vocabulary category (`plan`, `acquisition_channel`,
/// `device`, `level`): any text that is not empty once trimmed; the trimmed
/// text, case kept.
pub fn parse_category(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// Marker for an event without a course (`course_id` null).
pub const NO_COURSE: u32 = u32::MAX;

/// One row of `learners`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learner {
    /// Unique id.
    pub id: String,
    /// Sign-up time, ms since epoch UTC.
    pub signup_at: i64,
    /// Plan at sign-up: any non-empty text; [`Plan`] lists the values the
    /// playbook knows.
    pub plan: String,
    /// How the learner was acquired (free text, e.g. `organic`).
    pub acquisition_channel: String,
    /// Device, when known.
    pub device: Option<String>,
    /// Values of the dataset's numeric learner attributes
    /// ([`LearnerAttributes::numeric`], same order; NaN is missing). Empty
    /// when the data declares none.
    pub numeric_attributes: Vec<f64>,
    /// Values of the dataset's categorical learner attributes
    /// ([`LearnerAttributes::categorical`], same order; `None` is missing).
    pub categorical_attributes: Vec<Option<String>>,
}

/// The extra `learners` columns a data directory declares (`contract.toml`,
/// `[learners]`): a platform's own learner attributes (demographics, a
/// company size, a study load), which become profile features.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerAttributes {
    /// Numeric attribute columns, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<String>,
    /// Categorical attribute columns (open vocabularies), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<String>,
}

/// The `learners` columns of the contract itself: no attribute may take
/// their names.
pub const LEARNER_COLUMNS: [&str; 5] = [
    "learner_id",
    "signup_at",
    "plan",
    "acquisition_channel",
    "device",
];

/// Longest learner attribute name, in bytes.
pub const ATTRIBUTE_NAME_MAX_LEN: usize = 64;

impl LearnerAttributes {
    /// Whether no attribute is declared.
    pub fn is_empty(&self) -> bool {
        self.numeric.is_empty() && self.categorical.is_empty()
    }

    /// Checks the names: snake_case (`a-z`, digits, `_`, starting with a
    /// letter, at most [`ATTRIBUTE_NAME_MAX_LEN`] bytes: a safe column, JSON
    /// field and feature name), distinct, and none of [`LEARNER_COLUMNS`].
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for name in self.numeric.iter().chain(&self.categorical) {
            let snake = !name.is_empty()
                && name.len() <= ATTRIBUTE_NAME_MAX_LEN
                && name.as_bytes()[0].is_ascii_lowercase()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !snake {
                return Err(format!(
                    "learner attribute {name:?}: a name is 1-{ATTRIBUTE_NAME_MAX_LEN} characters of a-z, 0-9 and _, starting with a letter"
                ));
            }
            if LEARNER_COLUMNS.contains(&name.as_str()) {
                return Err(format!(
                    "learner attribute {name:?} is a column of the contract's learners table"
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("learner attribute {name:?} is declared twice"));
            }
        }
        Ok(())
    }
}

/// One row of `courses`.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    /// Unique id.
    pub id: String,
    /// Difficulty: any non-empty text; [`Level`] lists the known values.
    pub level: String,
    /// Number of lessons, > 0.
    pub lessons: u32,
    /// When the course (or presentation) ends, if it does: a learner whose
    /// courses have all ended is finished, not churned (ms since epoch UTC).
    pub ends_at: Option<i64>,
    /// When the course (or presentation) starts, if known (ms since epoch UTC).
    pub starts_at: Option<i64>,
}

/// One row of `events`, with ids resolved to indices into the [`Dataset`]'s tables.
///
/// Measures are `f64` with NaN meaning "absent" (the contract's null): validation
/// rejects non-finite input values, so NaN can only mean null here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Time, ms since epoch UTC.
    pub ts: i64,
    /// Index into [`Dataset::learners`].
    pub learner: u32,
    /// Index into [`Dataset::courses`], or [`NO_COURSE`].
    pub course: u32,
    /// What happened.
    pub event_type: EventKind,
    /// How many occurrences the row stands for (≥ 1): a daily aggregate is one
    /// row with its count.
    pub count: u32,
    /// Seconds watched or attended (video_watch, live_class).
    pub duration_s: f64,
    /// Quiz score in [0, 1] (quiz_attempt).
    pub score: f64,
    /// Amount paid (payment).
    pub amount: f64,
    /// Live-class latency in ms (live_class).
    pub latency_ms: f64,
    /// Live-class stalls (live_class).
    pub stalls: f64,
}

impl Event {
    /// One occurrence with no course and no measures.
    pub fn new(ts: i64, learner: u32, event_type: impl Into<EventKind>) -> Self {
        Event {
            ts,
            learner,
            course: NO_COURSE,
            event_type: event_type.into(),
            count: 1,
            duration_s: f64::NAN,
            score: f64::NAN,
            amount: f64::NAN,
            latency_ms: f64::NAN,
            stalls: f64::NAN,
        }
    }

    /// The course index, if the event has one.
    pub fn course(&self) -> Option<u32> {
        (self.course != NO_COURSE).then_some(self.course)
    }

    /// The contract's canonical order of one learner's events (DESIGN.md
    /// "Bring your own data"): by time, then every other field but the
    /// learner, so events sorted by it come out the same whatever order the
    /// file had them in. Measures compare with NaN (absent) after every number.
    pub fn canonical_cmp(&self, other: &Event) -> std::cmp::Ordering {
        let measures = |e: &Event| [e.duration_s, e.score, e.amount, e.latency_ms, e.stalls];
        self.ts
            .cmp(&other.ts)
            .then(self.event_type.rank().cmp(&other.event_type.rank()))
            .then(self.course.cmp(&other.course))
            .then(self.count.cmp(&other.count))
            .then_with(|| {
                measures(self)
                    .iter()
                    .zip(measures(other))
                    .map(|(a, b)| nan_last(*a, b))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }
}

fn nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => a.total_cmp(&b),
    }
}

/// How "churned" is defined (DESIGN.md "Features and labels", "Bring your own
/// data"); a setting of every command that computes labels, recorded on the
/// model card.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LabelDefinition {
    /// No activity for the horizon (a course platform's "dropped out").
    Inactivity,
    /// A `subscription_cancel` within the horizon (a subscription business's
    /// churn; a course platform's withdrawal).
    Cancellation,
    /// Either of the two: the contract's original definition.
    #[default]
    Either,
}

impl LabelDefinition {
    /// Every definition.
    pub const ALL: [LabelDefinition; 3] = [
        LabelDefinition::Inactivity,
        LabelDefinition::Cancellation,
        LabelDefinition::Either,
    ];

    /// The spelling used in files, flags and cards.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelDefinition::Inactivity => "inactivity",
            LabelDefinition::Cancellation => "cancellation",
            LabelDefinition::Either => "either",
        }
    }

    /// Parses [`Self::as_str`]'s spelling.
    pub fn parse(text: &str) -> Result<Self, ParseEnumError> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == text)
            .ok_or_else(|| ParseEnumError {
                what: "label definition",
                value: text.to_owned(),
                allowed: "inactivity, cancellation, either".into(),
            })
    }
}

impl fmt::Display for LabelDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `deadlines` (optional): something a course's learners are
/// due to do by a time, met by an event of a known type in that course
/// (an assessment due on day 54, met by a `quiz_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Index into `Dataset::courses`.
    pub course: u32,
    /// When it is due (ms since epoch UTC).
    pub due_at: i64,
    /// The event that meets it.
    pub event_type: EventType,
}

/// Adds the occurrences (`count` included) of each custom event type of
/// `events` to `occurrences`, indexed by custom type index.
pub fn count_custom_occurrences(events: &[Event], occurrences: &mut [u64]) {
    for e in events {
        if let EventKind::Custom { index, .. } = e.event_type
            && let Some(n) = occurrences.get_mut(usize::from(index))
        {
            *n += u64::from(e.count);
        }
    }
}

/// One row of `assignments`: a learner put into an experiment arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Experiment the row belongs to.
    pub experiment_id: String,
    /// Index into [`Dataset::learners`].
    pub learner: u32,
    /// Arm name; `control` is the baseline.
    pub arm: String,
    /// Assignment time, ms since epoch UTC.
    pub assigned_at: i64,
    /// Probability of the arm received, when logged.
    pub propensity: Option<f64>,
    /// A risk score known at assignment time, when logged.
    pub risk_score: Option<f64>,
    /// Cost of the treatment given, when known.
    pub cost: Option<f64>,
    /// The outcome, when given explicitly instead of derived from events.
    pub churned: Option<bool>,
}

/// The four tables of a data directory, ids resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Learners in file order.
    pub learners: Vec<Learner>,
    /// Courses in file order.
    pub courses: Vec<Course>,
    /// Events in file order.
    pub events: Vec<Event>,
    /// Names of the custom event types, sorted: `EventKind::Custom { index }`
    /// is `custom_event_types[index]`.
    pub custom_event_types: Vec<String>,
    /// Assignments in file order (empty when the table is absent).
    pub assignments: Vec<Assignment>,
    /// Course deadlines in file order (empty when the table is absent).
    pub deadlines: Vec<Deadline>,
    /// The learner attributes the data declares: every learner's
    /// `numeric_attributes` / `categorical_attributes` follow this order.
    pub attributes: LearnerAttributes,
}

impl Dataset {
    /// The name of an event's type, known or custom.
    pub fn event_type_name(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Known(t) => t.as_str(),
            EventKind::Custom { index, .. } => self
                .custom_event_types
                .get(usize::from(index))
                .map_or("(custom)", String::as_str),
        }
    }

    /// The time of the latest event (ms), `None` without events: where the
    /// data ends, for labels whose horizon would run past it.
    pub fn last_event_time(&self) -> Option<i64> {
        self.events.iter().map(|e| e.ts).max()
    }
}

/// The tables of the contract, in dependency order (events refer to learners
/// and courses; assignments refer to learners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `learners`
    Learners,
    /// `courses`
    Courses,
    /// `events`
    Events,
    /// `assignments`
    Assignments,
    /// `deadlines`
    Deadlines,
}

impl Table {
    /// All tables in dependency order.
    pub const ALL: [Table; 5] = [
        Table::Learners,
        Table::Courses,
        Table::Events,
        Table::Assignments,
        Table::Deadlines,
    ];

    /// File stem of the table in a data directory.
    pub fn name(self) -> &'static str {
        match self {
            Table::Learners => "learners",
            Table::Courses => "courses",
            Table::Events => "events",
            Table::Assignments => "assignments",
            Table::Deadlines => "deadlines",
        }
    }

    /// Whether a data directory must contain the table.
    pub fn required(self) -> bool {
        !matches!(self, Table::Assignments | Table::Deadlines)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_reject_unknown() {
        for &t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
        }
        let err = Plan::parse("gold").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"gold\" is not a valid plan (allowed: free, monthly, annual)"
        );
        assert!(Level::parse("Beginner").is_err(), "spellings are exact");
    }

    #[test]
    fn activity_is_exactly_the_seven_of_the_contract() {
        let activity: Vec<&str> = EventType::ALL
            .iter()
            .filter(|t| t.is_activity())
            .map(|t| t.as_str())
            .collect();
        assert_eq!(
            activity,
            [
                "login",
                "video_watch",
                "lesson_complete",
                "quiz_attempt",
                "forum_post",
                "checkin",
                "live_class"
            ]
        );
    }

    #[test]
    fn event_types_are_known_or_well_formed_custom_names() {
        assert_eq!(parse_event_type("login"), Ok(Ok(EventType::Login)));
        assert_eq!(parse_event_type("video_play"), Ok(Err("video_play")));
        assert_eq!(parse_event_type("oulad:forumng"), Ok(Err("oulad:forumng")));
        for bad in ["", "Video", "9lives", "page view", "a/b", &"x".repeat(65)] {
            assert!(parse_event_type(bad).is_err(), "{bad:?} is refused");
        }
        assert!(parse_event_type(&"x".repeat(64)).is_ok());
        assert_eq!(parse_category("  Pro "), Some("Pro"));
        assert_eq!(parse_category(" \t"), None);
    }

    #[test]
    fn the_canonical_order_is_total_and_ignores_the_learner() {
        let custom = |index, activity| EventKind::Custom { index, activity };
        let mut a = Event::new(5, 0, EventType::QuizAttempt);
        a.score = 0.5;
        let mut b = a;
        b.score = f64::NAN;
        assert!(a.canonical_cmp(&b).is_lt(), "absent measures sort last");
        let c = Event::new(5, 9, custom(0, true));
        assert!(
            a.canonical_cmp(&c).is_lt(),
            "known types before custom ones"
        );
        assert!(c.canonical_cmp(&Event::new(5, 0, custom(1, false))).is_lt());
        assert!(
            Event::new(4, 0, custom(3, false)).canonical_cmp(&a).is_lt(),
            "time first"
        );
        let mut d = a;
        d.learner = 7;
        assert!(a.canonical_cmp(&d).is_eq());
        let mut e = a;
        e.count = 2;
        assert!(a.canonical_cmp(&e).is_lt());
        assert!(custom(0, true).is_activity() && !custom(0, false).is_activity());
        assert_eq!(EventKind::from(EventType::Login), EventType::Login);
    }

    #[test]
    fn label_definitions_round_trip() {
        for d in LabelDefinition::ALL {
            assert_eq!(LabelDefinition::parse(d.as_str()), Ok(d));
        }
        assert!(LabelDefinition::parse("churn").is_err());
        assert_eq!(LabelDefinition::default(), LabelDefinition::Either);
    }
}
