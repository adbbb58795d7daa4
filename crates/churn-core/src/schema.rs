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

/// Marker for an event without a course (`course_id` null).
pub const NO_COURSE: u32 = u32::MAX;

/// One row of `learners`.
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    /// Unique id.
    pub id: String,
    /// Sign-up time, ms since epoch UTC.
    pub signup_at: i64,
    /// Plan at sign-up.
    pub plan: Plan,
    /// How the learner was acquired (free text, e.g. `organic`).
    pub acquisition_channel: String,
    /// Device, when known.
    pub device: Option<String>,
}

/// One row of `courses`.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    /// Unique id.
    pub id: String,
    /// Difficulty.
    pub level: Level,
    /// Number of lessons, > 0.
    pub lessons: u32,
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
    pub event_type: EventType,
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
    /// An event with no course and no measures.
    pub fn new(ts: i64, learner: u32, event_type: EventType) -> Self {
        Event {
            ts,
            learner,
            course: NO_COURSE,
            event_type,
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
    /// Assignments in file order (empty when the table is absent).
    pub assignments: Vec<Assignment>,
}

impl Dataset {
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
}

impl Table {
    /// All tables in dependency order.
    pub const ALL: [Table; 4] = [
        Table::Learners,
        Table::Courses,
        Table::Events,
        Table::Assignments,
    ];

    /// File stem of the table in a data directory.
    pub fn name(self) -> &'static str {
        match self {
            Table::Learners => "learners",
            Table::Courses => "courses",
            Table::Events => "events",
            Table::Assignments => "assignments",
        }
    }

    /// Whether a data directory must contain the table.
    pub fn required(self) -> bool {
        !matches!(self, Table::Assignments)
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
}
