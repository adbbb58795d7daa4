//! The true churn model: what drives a learner to leave, and what each arm does.
//!
//! The 30-day churn log-odds of a learner at a moment is
//! `BASE_LOGIT + Σ pushes`, each push a named driver ≥ 0. The simulator turns
//! it into a daily leave hazard, and at the experiment date draws the outcome
//! directly from `sigmoid(logit − effect(arm))`. The largest push is the
//! learner's true dominant driver (written to the truth file).

use serde::Serialize;

/// Intercept of the 30-day churn log-odds.
pub const BASE_LOGIT: f64 = -4.6;

/// The named churn drivers, in the order of [`Drivers::values`].
pub const DRIVER_NAMES: [&str; 8] = [
    "inactivity",
    "low_completion",
    "refund_views",
    "live_experience",
    "no_community",
    "quiz_accuracy",
    "plan",
    "new_learner",
];

/// What the model knows about a learner at one moment (all of it observable
/// through the events up to that moment, apart from the latent traits).
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// Days since the last activity event (or since signup when none).
    pub days_inactive: f64,
    /// Days since signup.
    pub tenure_days: f64,
    /// Distinct lessons completed / lessons of enrolled courses.
    pub completion_rate: f64,
    /// Refund-policy page views in the last 14 days.
    pub refund_views_14d: u32,
    /// Mean latency (ms) of the last live classes in 30 days, if any.
    pub live_latency_ms: Option<f64>,
    /// Mean stalls per live class over the same classes.
    pub live_stalls: f64,
    /// Days since the last forum post or check-in (or since signup).
    pub days_without_community: f64,
    /// Mean score of the last quiz attempts, if any.
    pub quiz_mean: Option<f64>,
    /// On a paid plan now.
    pub paid: bool,
    /// On the annual plan now.
    pub annual: bool,
    /// Latent: price sensitivity in (0, 1).
    pub price_sensitivity: f64,
    /// Latent: sociability (standard normal).
    pub sociability: f64,
    /// Latent: skill (standard normal).
    pub skill: f64,
    /// Latent: difficulty of the current course minus skill.
    pub difficulty_gap: f64,
    /// Latent: unobserved frailty, added to the log-odds.
    pub frailty: f64,
}

/// The value of every driver at one moment (log-odds pushes, each ≥ 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Drivers {
    /// Saturating in days without activity.
    pub inactivity: f64,
    /// Behind the expected pace of lessons (only after two weeks).
    pub low_completion: f64,
    /// Recent views of the refund policy.
    pub refund_views: f64,
    /// High latency and stalls in recent live classes.
    pub live_experience: f64,
    /// Two weeks without posts or check-ins, stronger for sociable learners.
    pub no_community: f64,
    /// Low mean quiz score.
    pub quiz_accuracy: f64,
    /// Free and price-sensitive monthly learners leave more easily.
    pub plan: f64,
    /// New learners leave more easily.
    pub new_learner: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// How bad recent live classes were: 0 (fine) up to about 2.5.
pub fn live_badness(state: &State) -> f64 {
    match state.live_latency_ms {
        None => 0.0,
        Some(latency) => {
            ((latency - 200.0) / 200.0).clamp(0.0, 1.5) + 0.25 * state.live_stalls.min(4.0)
        }
    }
}

impl Drivers {
    /// The drivers at a state.
    pub fn at(state: &State) -> Drivers {
        let expected_completion = (state.tenure_days / 60.0).clamp(0.05, 1.0);
        let on_pace = state.completion_rate / expected_completion;
        let low_completion = if state.tenure_days >= 14.0 {
            // Non-linear: nothing while on pace, then steep; worse when the course is too hard.
            2.8 * ((0.7 - on_pace).clamp(0.0, 0.7) / 0.7)
                * (1.0 + 0.3 * state.difficulty_gap.max(0.0))
        } else {
            0.0
        };
        let no_community = if state.days_without_community >= 14.0 {
            1.2 * sigmoid(1.5 * state.sociability + 0.3)
        } else {
            0.0
        };
        let plan = if state.annual {
            0.0
        } else if state.paid {
            0.1 + 0.9 * state.price_sensitivity
        } else {
            0.5
        };
        Drivers {
            // A step around a week without activity ("no login for 7+ days").
            inactivity: 3.4 * sigmoid((state.days_inactive - 6.5) / 1.2),
            low_completion,
            // Paying learners who read the refund policy mean it.
            refund_views: if state.paid { 1.6 } else { 0.6 }
                * f64::from(state.refund_views_14d.min(3)),
            live_experience: 1.9 * live_badness(state),
            no_community,
            quiz_accuracy: state
                .quiz_mean
                .map_or(0.0, |q| 2.2 * ((0.55 - q).max(0.0) / 0.55)),
            plan,
            new_learner: 1.1 * (-state.tenure_days / 21.0).exp(),
        }
    }

    /// The pushes in the order of [`DRIVER_NAMES`].
    pub fn values(&self) -> [f64; 8] {
        [
            self.inactivity,
            self.low_completion,
            self.refund_views,
            self.live_experience,
            self.no_community,
            self.quiz_accuracy,
            self.plan,
            self.new_learner,
        ]
    }

    /// 30-day churn log-odds under control, for a learner with the given
    /// unobserved frailty (a latent trait no feature can see).
    pub fn logit(&self, frailty: f64) -> f64 {
        BASE_LOGIT + frailty + self.values().iter().sum::<f64>()
    }

    /// The name of the largest push (first in [`DRIVER_NAMES`] order on ties).
    pub fn dominant(&self) -> &'static str {
        let values = self.values();
        let mut best = 0;
        for (i, v) in values.iter().enumerate() {
            if *v > values[best] {
                best = i;
            }
        }
        DRIVER_NAMES[best]
    }
}

/// The experiment's arms; `control` first.
pub const ARMS: [&str; 4] = [
    "control",
    "recall_coupon",
    "foundational_course",
    "proactive_contact",
];

/// Cost of one treatment per arm (same order as [`ARMS`]).
pub const ARM_COSTS: [f64; 4] = [0.0, 5.0, 2.0, 15.0];

/// Reduction of the 30-day churn log-odds by each arm (positive helps), per arm
/// in [`ARMS`] order. Heterogeneous by design: each arm answers one driver,
/// and some learners are slightly harmed.
pub fn arm_effects(state: &State, drivers: &Drivers) -> [f64; 4] {
    let inactive = drivers.inactivity / 3.4;
    let recall_coupon =
        2.6 * state.price_sensitivity * inactive - if state.annual { 0.25 } else { 0.0 };
    let foundational_course = 0.8 * drivers.low_completion + 0.3 * state.difficulty_gap.max(0.0)
        - if state.skill > 1.0 { 0.2 } else { 0.0 };
    let proactive_contact = 0.9 * f64::from(state.refund_views_14d.min(3))
        + 0.7 * live_badness(state)
        - if state.sociability < -0.8 { 0.15 } else { 0.0 };
    [0.0, recall_coupon, foundational_course, proactive_contact]
}

/// True 30-day churn probability under each arm, in [`ARMS`] order.
pub fn arm_probabilities(state: &State) -> ([f64; 4], Drivers) {
    let drivers = Drivers::at(state);
    let logit = drivers.logit(state.frailty);
    let effects = arm_effects(state, &drivers);
    (effects.map(|tau| sigmoid(logit - tau)), drivers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engaged() -> State {
        State {
            days_inactive: 0.5,
            tenure_days: 60.0,
            completion_rate: 0.9,
            refund_views_14d: 0,
            live_latency_ms: Some(120.0),
            live_stalls: 0.0,
            days_without_community: 2.0,
            quiz_mean: Some(0.8),
            paid: true,
            annual: true,
            price_sensitivity: 0.2,
            sociability: 0.0,
            skill: 0.0,
            difficulty_gap: -0.5,
            frailty: 0.0,
        }
    }

    #[test]
    fn each_driver_moves_risk_the_documented_way() {
        let base = arm_probabilities(&engaged()).0[0];
        assert!(base < 0.1, "an engaged annual learner is low risk: {base}");
        let worse = [
            State {
                days_inactive: 14.0,
                ..engaged()
            },
            State {
                completion_rate: 0.1,
                ..engaged()
            },
            State {
                refund_views_14d: 2,
                ..engaged()
            },
            State {
                live_latency_ms: Some(500.0),
                live_stalls: 3.0,
                ..engaged()
            },
            State {
                days_without_community: 20.0,
                ..engaged()
            },
            State {
                quiz_mean: Some(0.2),
                ..engaged()
            },
            State {
                annual: false,
                paid: false,
                ..engaged()
            },
            State {
                tenure_days: 2.0,
                completion_rate: 0.9,
                ..engaged()
            },
        ];
        for (name, state) in DRIVER_NAMES.iter().zip(worse) {
            let (p, drivers) = arm_probabilities(&state);
            assert!(p[0] > base, "{name} should raise risk");
            assert_eq!(
                drivers.dominant(),
                *name,
                "{name} should dominate: {drivers:?}"
            );
        }
    }

    #[test]
    fn arms_help_the_learners_they_are_meant_for() {
        let inactive_price_sensitive = State {
            days_inactive: 12.0,
            price_sensitivity: 0.9,
            annual: false,
            ..engaged()
        };
        let (p, _) = arm_probabilities(&inactive_price_sensitive);
        assert!(p[1] < p[0] - 0.05, "coupon helps: {p:?}");
        let refund_viewer = State {
            refund_views_14d: 3,
            ..engaged()
        };
        let (p, _) = arm_probabilities(&refund_viewer);
        assert!(p[3] < p[0] - 0.05, "contact helps: {p:?}");
        let behind = State {
            completion_rate: 0.05,
            difficulty_gap: 1.0,
            ..engaged()
        };
        let (p, _) = arm_probabilities(&behind);
        assert!(p[2] < p[0] - 0.05, "course helps: {p:?}");
        // The coupon slightly harms an engaged annual learner.
        let (p, _) = arm_probabilities(&engaged());
        assert!(p[1] > p[0], "coupon annoys engaged annual learners: {p:?}");
    }
}
