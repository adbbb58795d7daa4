//! One learner's life, day by day: behaviour from latent traits, leaving by
//! the true hazard, and the experiment's drawn outcome realised in the events.

use std::collections::VecDeque;

use churn_core::{
    Course, DAY_MS, Event, EventType, HOUR_MS, LabelDefinition, Learner, Level, NO_COURSE, Plan,
};
use churn_features::label::not_eligible;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::params::{AssignmentMode, ValidSimParams};
use crate::truth_model::{ARMS, Drivers, State, arm_probabilities, live_badness};

const MONTHLY_PRICE: f64 = 29.0;
const ANNUAL_PRICE: f64 = 199.0;
const MINUTE_MS: i64 = 60_000;

/// The course catalogue and an index of courses by level.
pub(crate) struct Catalogue {
    pub(crate) courses: Vec<Course>,
    /// The level of each course, as the simulator drew it.
    levels: Vec<Level>,
    by_level: [Vec<u32>; 3],
}

/// Latent traits of a learner (written to the truth file).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Traits {
    /// Long-run motivation (standard normal, shifted by channel and plan).
    pub motivation: f64,
    /// Skill (standard normal); courses above it are hard.
    pub skill: f64,
    /// Price sensitivity in (0, 1).
    pub price_sensitivity: f64,
    /// Network quality (standard normal); low means high live-class latency.
    pub network_quality: f64,
    /// Sociability (standard normal).
    pub sociability: f64,
    /// Probability scale of attending live classes, in (0, 1).
    pub live_affinity: f64,
    /// Unobserved frailty added to the churn log-odds (normal, sd 1.2).
    pub frailty: f64,
}

/// The experiment part of a learner's truth.
#[derive(Debug, Clone)]
pub struct ExperimentTruth {
    /// Index into [`ARMS`].
    pub arm: usize,
    /// Probability of the arm received.
    pub propensity: f64,
    /// True 30-day churn probability under each arm.
    pub probabilities: [f64; 4],
    /// Drivers at the assignment time.
    pub drivers: Drivers,
    /// The drawn outcome.
    pub churned: bool,
}

/// Everything the simulator knows about one learner.
#[derive(Debug, Clone)]
pub struct LearnerTruth {
    /// Latent traits.
    pub traits: Traits,
    /// When the learner left (the last time, if brought back by a treatment).
    pub left_at: Option<i64>,
    /// The dominant driver on the day the learner left.
    pub leave_driver: Option<&'static str>,
    /// Set when the learner was in the experiment.
    pub experiment: Option<ExperimentTruth>,
}

/// One simulated learner.
pub(crate) struct Simulated {
    pub(crate) learner: Learner,
    pub(crate) events: Vec<Event>,
    pub(crate) truth: LearnerTruth,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A 64-bit mix (splitmix64 finaliser): distinct streams from one seed.
pub(crate) fn stream_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }
    fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }
    fn normal(&mut self) -> f64 {
        self.0.sample(StandardNormal)
    }
    /// True with probability `p` (any `p`: below 0 never, above 1 always).
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
    /// Knuth's method; the rates used here are small.
    fn poisson(&mut self, lambda: f64) -> u32 {
        let limit = (-lambda.max(0.0)).exp();
        let mut product = self.uniform();
        let mut k = 0;
        while product > limit && k < 64 {
            product *= self.uniform();
            k += 1;
        }
        k
    }
    /// A time in `[from, to)` on the minute grid.
    fn time_between(&mut self, from: i64, to: i64) -> i64 {
        let minutes = ((to - from) / MINUTE_MS).max(1);
        from + self.0.random_range(0..minutes) * MINUTE_MS
    }
    fn pick<'a, T>(&mut self, weighted: &'a [(T, f64)]) -> &'a T {
        let total: f64 = weighted.iter().map(|(_, w)| w).sum();
        let mut u = self.uniform() * total;
        for (item, weight) in weighted {
            if u < *weight {
                return item;
            }
            u -= weight;
        }
        &weighted[weighted.len() - 1].0
    }
}

impl Catalogue {
    pub(crate) fn generate(count: usize, seed: u64) -> Catalogue {
        let mut rng = Rng::new(stream_seed(seed, u64::MAX));
        let mut by_level: [Vec<u32>; 3] = Default::default();
        let mut courses = Vec::with_capacity(count);
        let mut levels = Vec::with_capacity(count);
        let width = digits(count);
        for i in 0..count {
            // The first three cover every level, so each level has a course.
            let level = match i {
                0..=2 => Level::ALL[i],
                _ => *rng.pick(&[
                    (Level::Beginner, 0.4),
                    (Level::Intermediate, 0.35),
                    (Level::Advanced, 0.25),
                ]),
            };
            by_level[level.code() as usize].push(i as u32);
            levels.push(level);
            courses.push(Course {
                id: format!("C{:0width$}", i + 1),
                level: level.as_str().to_owned(),
                lessons: 8 + rng.below(33) as u32,
                ends_at: None,
                starts_at: None,
            });
        }
        Catalogue {
            courses,
            levels,
            by_level,
        }
    }

    fn difficulty(&self, course: u32) -> f64 {
        match self.levels[course as usize] {
            Level::Beginner => -0.6,
            Level::Intermediate => 0.4,
            Level::Advanced => 1.3,
        }
    }
}

pub(crate) fn digits(count: usize) -> usize {
    count.max(1).to_string().len().max(3)
}

/// The running state of one learner's simulation.
struct Life<'a> {
    rng: Rng,
    /// From this time live classes have worse latency (the drift scenario).
    worse_latency_from: Option<i64>,
    index: u32,
    catalogue: &'a Catalogue,
    traits: Traits,
    signup_at: i64,
    events: Vec<Event>,
    motivation: f64,
    paid: bool,
    annual: bool,
    next_payment: Option<i64>,
    /// (course, lessons completed), the current course last.
    enrolled: Vec<(u32, u32)>,
    last_activity: Option<i64>,
    last_community: Option<i64>,
    refund_views: VecDeque<i64>,
    /// (ts, latency, stalls) of the last live classes.
    live: VecDeque<(i64, f64, f64)>,
    quiz_scores: VecDeque<f64>,
    left: bool,
}

pub(crate) fn simulate_learner(
    params: &ValidSimParams,
    catalogue: &Catalogue,
    index: u32,
) -> Simulated {
    let raw = params.raw();
    let mut rng = Rng::new(stream_seed(raw.seed, u64::from(index)));
    let width = digits(raw.learners);

    // Profile.
    let channel = *rng.pick(&[
        ("organic", 0.35),
        ("paid_search", 0.25),
        ("social", 0.2),
        ("referral", 0.12),
        ("partner", 0.08),
    ]);
    let plan_weights: &[(Plan, f64)] = match channel {
        "referral" => &[
            (Plan::Free, 0.35),
            (Plan::Monthly, 0.35),
            (Plan::Annual, 0.3),
        ],
        "social" => &[
            (Plan::Free, 0.65),
            (Plan::Monthly, 0.27),
            (Plan::Annual, 0.08),
        ],
        "partner" => &[(Plan::Free, 0.3), (Plan::Monthly, 0.3), (Plan::Annual, 0.4)],
        _ => &[
            (Plan::Free, 0.5),
            (Plan::Monthly, 0.35),
            (Plan::Annual, 0.15),
        ],
    };
    let plan = *rng.pick(plan_weights);
    let device = *rng.pick(&[
        (Some("web"), 0.45),
        (Some("android"), 0.3),
        (Some("ios"), 0.22),
        (None, 0.03),
    ]);
    let channel_motivation = match channel {
        "referral" => 0.35,
        "partner" => 0.2,
        "social" => -0.25,
        "paid_search" => -0.1,
        _ => 0.0,
    };
    let traits = Traits {
        motivation: rng.normal()
            + channel_motivation
            + if plan == Plan::Annual { 0.3 } else { 0.0 },
        skill: rng.normal(),
        price_sensitivity: sigmoid(
            1.2 * rng.normal() + if plan == Plan::Free { 0.6 } else { -0.2 },
        ),
        network_quality: rng.normal() - if device == Some("android") { 0.35 } else { 0.0 },
        sociability: rng.normal(),
        live_affinity: sigmoid(rng.normal() - 0.8),
        frailty: 1.2 * rng.normal(),
    };

    // Sign-ups grow over time; nobody signs up in the last week.
    let signup_span = f64::from(raw.days - 7);
    let signup_day = (signup_span * rng.uniform().powf(0.85)) as u32;
    let day0 = raw.start + i64::from(signup_day) * DAY_MS;
    let signup_at = rng.time_between(day0 + 6 * HOUR_MS, day0 + 20 * HOUR_MS);
    // The drift scenario's new cohort: another channel mix, drawn from a
    // stream of its own so that the rest of the learner is unchanged.
    let mut channel = channel;
    let mut traits = traits;
    if raw.drift_day.is_some_and(|d| signup_day >= d) {
        let mut cohort = Rng::new(stream_seed(raw.seed ^ 0x00D2_1F7C_0407, u64::from(index)));
        let new_channel = *cohort.pick(&[
            ("organic", 0.1),
            ("paid_search", 0.35),
            ("social", 0.45),
            ("referral", 0.05),
            ("partner", 0.05),
        ]);
        let motivation = |c: &str| match c {
            "referral" => 0.35,
            "partner" => 0.2,
            "social" => -0.25,
            "paid_search" => -0.1,
            _ => 0.0,
        };
        traits.motivation += motivation(new_channel) - motivation(channel);
        channel = new_channel;
    }

    let mut life = Life {
        rng,
        worse_latency_from: raw.drift_day.map(|d| raw.start + i64::from(d) * DAY_MS),
        index,
        catalogue,
        traits,
        signup_at,
        events: Vec::with_capacity(128),
        motivation: traits.motivation + 0.6,
        paid: plan != Plan::Free,
        annual: plan == Plan::Annual,
        next_payment: None,
        enrolled: Vec::new(),
        last_activity: None,
        last_community: None,
        refund_views: VecDeque::new(),
        live: VecDeque::new(),
        quiz_scores: VecDeque::new(),
        left: false,
    };
    let truth = life.run(params, signup_day);
    Simulated {
        learner: Learner {
            id: format!("L{:0width$}", index + 1),
            signup_at,
            plan: plan.as_str().to_owned(),
            acquisition_channel: channel.to_owned(),
            device: device.map(str::to_owned),
            ..Learner::default()
        },
        events: life.events,
        truth,
    }
}

impl Life<'_> {
    fn push(&mut self, ts: i64, event_type: EventType) -> &mut Event {
        if event_type.is_activity() {
            self.last_activity = Some(self.last_activity.map_or(ts, |t| t.max(ts)));
        }
        self.events.push(Event::new(ts, self.index, event_type));
        let last = self.events.len() - 1;
        &mut self.events[last]
    }

    fn current_course(&self) -> u32 {
        self.enrolled.last().map_or(NO_COURSE, |c| c.0)
    }

    fn difficulty_gap(&self) -> f64 {
        match self.enrolled.last() {
            Some((course, _)) => self.catalogue.difficulty(*course) - self.traits.skill,
            None => 0.0,
        }
    }

    fn enroll(&mut self, ts: i64, harder: bool) {
        // Learners pick a level near their (noisily self-assessed) skill.
        let guess = self.traits.skill + 0.9 * self.rng.normal() + if harder { 0.8 } else { 0.0 };
        let level = if guess < -0.2 {
            0
        } else if guess < 0.9 {
            1
        } else {
            2
        };
        let pool = &self.catalogue.by_level[level];
        let course = pool[self.rng.below(pool.len())];
        self.enrolled.push((course, 0));
        self.push(ts, EventType::CourseEnroll).course = course;
    }

    /// The observable state at `now` (events strictly before it).
    fn state(&self, now: i64) -> State {
        let days =
            |since: Option<i64>| (now - since.unwrap_or(self.signup_at)) as f64 / DAY_MS as f64;
        let lessons: u32 = self
            .enrolled
            .iter()
            .map(|(c, _)| self.catalogue.courses[*c as usize].lessons)
            .sum();
        let completed: u32 = self.enrolled.iter().map(|(_, done)| done).sum();
        let recent_live: Vec<&(i64, f64, f64)> = self
            .live
            .iter()
            .filter(|(ts, _, _)| now - ts <= 30 * DAY_MS)
            .collect();
        let live_count = recent_live.len() as f64;
        State {
            days_inactive: days(self.last_activity),
            tenure_days: days(None),
            completion_rate: if lessons == 0 {
                0.0
            } else {
                f64::from(completed) / f64::from(lessons)
            },
            refund_views_14d: self
                .refund_views
                .iter()
                .filter(|ts| now - **ts <= 14 * DAY_MS)
                .count() as u32,
            live_latency_ms: (live_count > 0.0)
                .then(|| recent_live.iter().map(|l| l.1).sum::<f64>() / live_count),
            live_stalls: if live_count > 0.0 {
                recent_live.iter().map(|l| l.2).sum::<f64>() / live_count
            } else {
                0.0
            },
            days_without_community: days(self.last_community),
            quiz_mean: (!self.quiz_scores.is_empty())
                .then(|| self.quiz_scores.iter().sum::<f64>() / self.quiz_scores.len() as f64),
            paid: self.paid,
            annual: self.annual,
            price_sensitivity: self.traits.price_sensitivity,
            sociability: self.traits.sociability,
            skill: self.traits.skill,
            difficulty_gap: self.difficulty_gap(),
            frailty: self.traits.frailty,
        }
    }

    fn run(&mut self, params: &ValidSimParams, signup_day: u32) -> LearnerTruth {
        let raw = params.raw();
        let assigned_at = params.assigned_at();
        let horizon = params.horizon_ms();
        let mut truth = LearnerTruth {
            traits: self.traits,
            left_at: None,
            leave_driver: None,
            experiment: None,
        };

        // Sign-up day: enrol, pay if on a paid plan.
        self.enroll(self.signup_at + MINUTE_MS, false);
        if self.paid {
            let (amount, period) = if self.annual {
                (ANNUAL_PRICE, 365)
            } else {
                (MONTHLY_PRICE, 30)
            };
            self.push(self.signup_at + 2 * MINUTE_MS, EventType::Payment)
                .amount = amount;
            self.next_payment = Some(self.signup_at + period * DAY_MS);
        }

        let mut protected_until = i64::MIN;
        for day in signup_day..raw.days {
            let day_start = raw.start + i64::from(day) * DAY_MS;
            let day_end = day_start + DAY_MS;
            // The sign-up day also orders the enrolment and first payment made before the loop.
            let first = if day == signup_day {
                0
            } else {
                self.events.len()
            };

            if day_start == assigned_at {
                if let Some(experiment) = self.assign(params) {
                    if experiment.churned {
                        if !self.left {
                            self.leave(day_start, day_end, &mut truth, &experiment.drivers);
                        }
                    } else {
                        // Realise "not churned": no leaving and no cancellation in the
                        // horizon, and at least one activity event in it (below).
                        protected_until = assigned_at + horizon;
                        if self.left {
                            self.left = false;
                            self.motivation = self.traits.motivation;
                        }
                    }
                    truth.experiment = Some(experiment);
                }
            } else if self.left && day_start > assigned_at {
                break;
            }

            if !self.left {
                let protected = day_start < protected_until;
                let leaving = if protected || day == signup_day {
                    None
                } else {
                    let drivers = Drivers::at(&self.state(day_start));
                    let p30 = sigmoid(drivers.logit(self.traits.frailty));
                    let hazard = 1.0 - (1.0 - p30).powf(1.0 / 30.0);
                    self.rng.chance(hazard).then_some(drivers)
                };
                match leaving {
                    Some(drivers) => self.leave(day_start, day_end, &mut truth, &drivers),
                    None => self.live_day(day == signup_day, day_start, day_end),
                }
                if protected
                    && day_end >= protected_until
                    && self.last_activity.is_none_or(|t| t <= assigned_at)
                {
                    let from = day_start.max(assigned_at) + 7 * HOUR_MS;
                    let ts = self.rng.time_between(from, day_end.min(protected_until));
                    self.push(ts, EventType::Login);
                }
            }
            self.events[first..].sort_by_key(|e| e.ts);
        }
        truth
    }

    /// The experiment at `assigned_at`: who is in it, which arm, what outcome.
    fn assign(&mut self, params: &ValidSimParams) -> Option<ExperimentTruth> {
        let at = params.assigned_at();
        if not_eligible(
            LabelDefinition::Either,
            self.signup_at,
            &self.events,
            at,
            params.horizon_ms(),
        )
        .is_some()
        {
            return None;
        }
        let state = self.state(at);
        let (probabilities, drivers) = arm_probabilities(&state);
        let shares: [f64; 4] = match params.raw().assignment {
            AssignmentMode::Uniform => [0.25; 4],
            AssignmentMode::Targeted => {
                let control = 0.6 - 0.4 * probabilities[0];
                let treated = (1.0 - control) / 3.0;
                [control, treated, treated, treated]
            }
        };
        let weighted: Vec<(usize, f64)> = shares.iter().copied().enumerate().collect();
        let arm = *self.rng.pick(&weighted);
        let churned = self.rng.chance(probabilities[arm]);
        if ARMS[arm] == "recall_coupon"
            && self.rng.chance(0.1 + 0.6 * self.traits.price_sensitivity)
        {
            let ts = self.rng.time_between(at + 9 * HOUR_MS, at + 20 * HOUR_MS);
            self.push(ts, EventType::CouponRedeem);
        }
        Some(ExperimentTruth {
            arm,
            propensity: shares[arm],
            probabilities,
            drivers,
            churned,
        })
    }

    fn leave(&mut self, day_start: i64, day_end: i64, truth: &mut LearnerTruth, drivers: &Drivers) {
        self.left = true;
        truth.left_at = Some(day_start);
        truth.leave_driver = Some(drivers.dominant());
        if self.rng.chance(0.5) {
            let ts = self.rng.time_between(day_start + 8 * HOUR_MS, day_end);
            self.push(ts, EventType::RefundPageView);
        }
        if self.paid && self.rng.chance(0.6) {
            let ts = self.rng.time_between(day_start + 8 * HOUR_MS, day_end);
            self.push(ts, EventType::SubscriptionCancel);
        }
        self.paid = false;
        self.next_payment = None;
    }

    fn live_day(&mut self, signup_day: bool, day_start: i64, day_end: i64) {
        let gap = self.difficulty_gap();
        let t = self.traits;
        self.motivation += 0.03 * (t.motivation - self.motivation) + 0.08 * self.rng.normal()
            - 0.004
            - 0.012 * gap.max(0.0);
        // Life happens: a rare shock no event foretells (a new job, an exam, a move).
        if self.rng.chance(0.01) {
            self.motivation -= 1.5 + self.rng.uniform();
        }

        // Renewals happen whether or not the learner shows up.
        while let Some(due) = self.next_payment.filter(|due| *due < day_end) {
            let (amount, period) = if self.annual {
                (ANNUAL_PRICE, 365)
            } else {
                (MONTHLY_PRICE, 30)
            };
            self.push(due, EventType::Payment).amount = amount;
            self.next_payment = Some(due + period * DAY_MS);
        }

        let active = signup_day || self.rng.chance(sigmoid(-0.3 + 1.3 * self.motivation));
        if active {
            self.session(signup_day, day_start, day_end, gap);
        }

        // Signals of dissatisfaction, on any day (on the sign-up day, after enrolling).
        let earliest = day_start.max(self.signup_at + 3 * MINUTE_MS);
        let state = self.state(day_start);
        let badness = live_badness(&state);
        let dissatisfaction = 0.8 * gap.max(0.0)
            + 0.9 * badness
            + if self.paid {
                0.9 * t.price_sensitivity
            } else {
                0.0
            }
            + 0.4 * (-self.motivation).max(0.0);
        if self.rng.chance(sigmoid(-6.2 + 1.6 * dissatisfaction)) {
            let ts = self.rng.time_between(earliest, day_end);
            self.push(ts, EventType::RefundPageView);
            self.refund_views.push_back(ts);
            if self.refund_views.len() > 8 {
                self.refund_views.pop_front();
            }
            self.motivation -= 0.05;
        }
        if self.rng.chance(sigmoid(
            -6.5 + 1.5 * badness + 0.8 * f64::from(state.refund_views_14d),
        )) {
            let ts = self.rng.time_between(earliest, day_end);
            self.push(ts, EventType::SupportTicket);
        }
        if !self.annual && self.rng.chance(0.002 * t.price_sensitivity) {
            let ts = self.rng.time_between(earliest, day_end);
            self.push(ts, EventType::CouponRedeem);
        }
        // Free learners who like it may start paying.
        if !self.paid && active && self.rng.chance(0.004 * sigmoid(self.motivation)) {
            let ts = self.rng.time_between(earliest, day_end);
            self.push(ts, EventType::Payment).amount = MONTHLY_PRICE;
            self.paid = true;
            self.next_payment = Some(ts + 30 * DAY_MS);
        }
    }

    /// One study session: login, videos, lessons, quizzes, community, live class.
    fn session(&mut self, signup_day: bool, day_start: i64, day_end: i64, gap: f64) {
        let t = self.traits;
        let mut ts = if signup_day {
            self.signup_at + 5 * MINUTE_MS
        } else {
            self.rng
                .time_between(day_start + 7 * HOUR_MS, day_start + 22 * HOUR_MS)
        };
        // Every event of the day stays inside the day, so a day's events never
        // leak past a midnight as-of time.
        let fits = |ts: i64| ts < day_end;
        self.push(ts, EventType::Login);
        ts += MINUTE_MS;

        let videos = 1 + self.rng.poisson(0.35 + 0.4 * self.motivation.max(0.0));
        for _ in 0..videos {
            let course = self.current_course();
            let seconds = (540f64.ln() + 0.25 * self.motivation + 0.5 * self.rng.normal())
                .exp()
                .clamp(30.0, 10_800.0)
                .round();
            if !fits(ts + seconds as i64 * 1000) {
                break;
            }
            let event = self.push(ts, EventType::VideoWatch);
            event.course = course;
            event.duration_s = seconds;
            ts += seconds as i64 * 1000 + MINUTE_MS;
            if self
                .rng
                .chance(sigmoid(0.4 - 1.3 * gap + 0.4 * self.motivation))
                && fits(ts)
                && let Some((course, done)) = self.enrolled.last_mut()
            {
                let lessons = self.catalogue.courses[*course as usize].lessons;
                if *done < lessons {
                    *done += 1;
                    let (course, finished) = (*course, *done == lessons);
                    self.push(ts, EventType::LessonComplete).course = course;
                    ts += MINUTE_MS;
                    if finished && self.rng.chance(0.6) && fits(ts) {
                        self.enroll(ts, true);
                        ts += MINUTE_MS;
                    }
                }
            }
        }
        if self.rng.chance(0.35) && fits(ts) {
            let score =
                (sigmoid(0.9 - 1.3 * gap + 0.6 * self.rng.normal()) * 100.0).round() / 100.0;
            let course = self.current_course();
            let event = self.push(ts, EventType::QuizAttempt);
            event.course = course;
            event.score = score;
            self.quiz_scores.push_back(score);
            if self.quiz_scores.len() > 10 {
                self.quiz_scores.pop_front();
            }
            ts += 5 * MINUTE_MS;
        }
        if self
            .rng
            .chance(sigmoid(-2.3 + t.sociability + 0.3 * self.motivation))
            && fits(ts)
        {
            self.push(ts, EventType::ForumPost);
            self.last_community = Some(ts);
            ts += 3 * MINUTE_MS;
        }
        if self
            .rng
            .chance(sigmoid(-1.0 + 0.9 * t.sociability + 0.5 * self.motivation))
            && fits(ts)
        {
            self.push(ts, EventType::Checkin);
            self.last_community = Some(ts);
            ts += MINUTE_MS;
        }
        if self.rng.chance(0.45 * t.live_affinity) {
            let degraded = if self.worse_latency_from.is_some_and(|from| ts >= from) {
                0.8
            } else {
                0.0
            };
            let latency =
                (130f64.ln() - 0.45 * t.network_quality + 0.35 * self.rng.normal() + degraded)
                    .exp()
                    .round();
            let stalls = f64::from(self.rng.poisson(((latency - 150.0) / 90.0).max(0.0)));
            let seconds = (2_700.0 - 200.0 * stalls).max(300.0);
            if fits(ts + seconds as i64 * 1000) {
                let course = self.current_course();
                let event = self.push(ts, EventType::LiveClass);
                event.course = course;
                event.duration_s = seconds;
                event.latency_ms = latency;
                event.stalls = stalls;
                self.live.push_back((ts, latency, stalls));
                if self.live.len() > 5 {
                    self.live.pop_front();
                }
                if latency > 300.0 || stalls >= 3.0 {
                    self.motivation -= 0.12;
                }
            }
        }
    }
}
