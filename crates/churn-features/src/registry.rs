//! The feature registry: the stable name, group, kind and one-line description
//! of every feature, in the order of [`crate::FeatureRow`] and of the columns of
//! the batch table.
//!
//! Names are part of the artifact and the HTTP API: renaming one is a breaking
//! change. Descriptions are what a person reads next to a contribution.

use std::fmt;

/// What part of a learner's life a feature describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Recency,
    Frequency,
    Depth,
    Progress,
    Mastery,
    Community,
    Experience,
    Dissatisfaction,
    Money,
    Profile,
}

impl Group {
    /// The lower-case name used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Recency => "recency",
            Group::Frequency => "frequency",
            Group::Depth => "depth",
            Group::Progress => "progress",
            Group::Mastery => "mastery",
            Group::Community => "community",
            Group::Experience => "experience",
            Group::Dissatisfaction => "dissatisfaction",
            Group::Money => "money",
            Group::Profile => "profile",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a feature is a number or a category (a string label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Numeric,
    Categorical,
}

/// One feature of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureDef {
    /// Stable snake_case name: the table column and the API field.
    pub name: &'static str,
    pub group: Group,
    pub kind: Kind,
    /// One line for people, e.g. "days since last login".
    pub description: &'static str,
}

const fn numeric(name: &'static str, group: Group, description: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        group,
        kind: Kind::Numeric,
        description,
    }
}

const fn categorical(name: &'static str, group: Group, description: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        group,
        kind: Kind::Categorical,
        description,
    }
}

use Group::*;

/// Numeric features, in the order of [`crate::FeatureRow::numeric`].
///
/// A window "7d" is `(t − 7 days, t]`. Counts and sums over a window are 0 when
/// nothing happened in it (that is a true zero); means, "days since" and rates
/// are NaN when there is nothing to take them over.
pub const NUMERIC: [FeatureDef; 33] = [
    numeric("days_since_last_login", Recency, "days since last login"),
    numeric(
        "days_since_last_activity",
        Recency,
        "days since last learning activity",
    ),
    numeric("logins_7d", Frequency, "logins in the last 7 days"),
    numeric("logins_30d", Frequency, "logins in the last 30 days"),
    numeric(
        "active_days_7d",
        Frequency,
        "days with learning activity in the last 7",
    ),
    numeric(
        "active_days_30d",
        Frequency,
        "days with learning activity in the last 30",
    ),
    numeric(
        "watch_minutes_7d",
        Depth,
        "minutes of video watched in the last 7 days",
    ),
    numeric(
        "watch_minutes_30d",
        Depth,
        "minutes of video watched in the last 30 days",
    ),
    numeric(
        "watch_minutes_trend_7d",
        Depth,
        "change in weekly watch minutes (last 7 days minus the 7 before)",
    ),
    numeric("courses_enrolled", Progress, "courses enrolled in"),
    numeric("lessons_completed", Progress, "lessons completed"),
    numeric(
        "lessons_completed_30d",
        Progress,
        "lessons completed in the last 30 days",
    ),
    numeric(
        "completion_rate",
        Progress,
        "share of the lessons of enrolled courses completed",
    ),
    numeric(
        "quiz_attempts_30d",
        Mastery,
        "quiz attempts in the last 30 days",
    ),
    numeric(
        "quiz_mean_score_30d",
        Mastery,
        "mean quiz score in the last 30 days",
    ),
    numeric(
        "quiz_mean_score_last10",
        Mastery,
        "mean score of the last 10 quiz attempts",
    ),
    numeric(
        "forum_posts_30d",
        Community,
        "forum posts in the last 30 days",
    ),
    numeric("checkins_30d", Community, "check-ins in the last 30 days"),
    numeric(
        "checkin_streak_days",
        Community,
        "consecutive days with a check-in, up to today or yesterday",
    ),
    numeric(
        "days_since_last_community",
        Community,
        "days since last forum post or check-in",
    ),
    numeric(
        "live_classes_30d",
        Experience,
        "live classes attended in the last 30 days",
    ),
    numeric(
        "live_mean_latency_ms_30d",
        Experience,
        "mean live-class latency (ms) in the last 30 days",
    ),
    numeric(
        "live_stalls_per_class_30d",
        Experience,
        "video stalls per live class in the last 30 days",
    ),
    numeric(
        "refund_views_7d",
        Dissatisfaction,
        "refund-policy page views in the last 7 days",
    ),
    numeric(
        "refund_views_30d",
        Dissatisfaction,
        "refund-policy page views in the last 30 days",
    ),
    numeric(
        "support_tickets_7d",
        Dissatisfaction,
        "support tickets in the last 7 days",
    ),
    numeric(
        "support_tickets_30d",
        Dissatisfaction,
        "support tickets in the last 30 days",
    ),
    numeric("payments_total", Money, "payments made"),
    numeric("amount_paid_total", Money, "total amount paid"),
    numeric("days_since_last_payment", Money, "days since last payment"),
    numeric("coupon_redemptions_total", Money, "coupons redeemed"),
    numeric(
        "cancellations_total",
        Money,
        "subscription cancellations (then came back)",
    ),
    numeric("tenure_days", Profile, "days since sign-up"),
];

/// Categorical features, in the order of [`crate::FeatureRow::categorical`].
pub const CATEGORICAL: [FeatureDef; 4] = [
    categorical("plan", Profile, "subscription plan"),
    categorical("acquisition_channel", Profile, "acquisition channel"),
    categorical("device", Profile, "device"),
    categorical(
        "lifecycle_stage",
        Profile,
        "lifecycle stage (new, active, lapsing)",
    ),
];

/// Number of numeric features.
pub const NUMERIC_COUNT: usize = NUMERIC.len();
/// Number of categorical features.
pub const CATEGORICAL_COUNT: usize = CATEGORICAL.len();

/// Every feature: the numeric ones, then the categorical ones (the column
/// order of the batch table after its key and label columns).
pub fn all() -> impl Iterator<Item = &'static FeatureDef> {
    NUMERIC.iter().chain(CATEGORICAL.iter())
}

/// The feature of that name.
pub fn find(name: &str) -> Option<&'static FeatureDef> {
    all().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case_and_kinds_match_their_list() {
        let mut seen = HashSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "duplicate feature {}", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                f.name
            );
            assert!(!f.description.is_empty());
        }
        assert!(NUMERIC.iter().all(|f| f.kind == Kind::Numeric));
        assert!(CATEGORICAL.iter().all(|f| f.kind == Kind::Categorical));
        assert_eq!(find("tenure_days").map(|f| f.group), Some(Group::Profile));
        assert_eq!(find("no_such_feature"), None);
    }

    #[test]
    fn every_group_has_a_feature() {
        let groups: HashSet<Group> = all().map(|f| f.group).collect();
        assert_eq!(groups.len(), 10);
    }
}
