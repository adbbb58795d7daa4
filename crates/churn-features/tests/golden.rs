//! Every feature of a small hand-written history, against values worked out by
//! hand (the comments show the arithmetic).

use churn_core::{DAY_MS, Event, EventType, HOUR_MS, LabelDefinition};
use churn_features::label::{LabelStatus, label_status};
use churn_features::{CATEGORICAL, FeatureLayout, NUMERIC, Profile, SortedEvents, compute};

const C0: u32 = 0; // 10 lessons
const C1: u32 = 1; // 5 lessons
const LESSONS: [u32; 2] = [10, 5];

fn at(day: i64, hour: i64) -> i64 {
    day * DAY_MS + hour * HOUR_MS
}

fn ev(ts: i64, event_type: EventType) -> Event {
    Event::new(ts, 7, event_type)
}

fn with_course(mut e: Event, course: u32) -> Event {
    e.course = course;
    e
}

fn history() -> Vec<Event> {
    use EventType::*;
    let mut events = vec![
        with_course(ev(at(55, 0), CourseEnroll), C0),
        Event {
            amount: 20.0,
            ..ev(at(55, 1), Payment)
        },
        with_course(ev(at(60, 0), CourseEnroll), C1),
        with_course(ev(at(65, 0), LessonComplete), C0),
        with_course(ev(at(66, 0), LessonComplete), C0),
        Event {
            score: 0.5,
            ..ev(at(70, 0), QuizAttempt) // exactly 30 days before t: outside "30d"
        },
        Event {
            score: 0.9,
            ..ev(at(71, 0), QuizAttempt)
        },
        ev(at(72, 0), CouponRedeem),
        ev(at(75, 0), SubscriptionCancel),
        ev(at(76, 0), Login), // came back after cancelling
        Event {
            latency_ms: 200.0,
            stalls: 1.0,
            ..ev(at(80, 0), LiveClass)
        },
        Event {
            latency_ms: 400.0,
            ..ev(at(85, 0), LiveClass) // stalls unknown
        },
        ev(at(86, 0), RefundPageView),
        Event {
            amount: 20.0,
            ..ev(at(86, 12), Payment)
        },
        ev(at(90, 0), SupportTicket),
        ev(at(90, 0), Checkin),
        Event {
            duration_s: 600.0,
            ..ev(at(92, 0), VideoWatch)
        },
        Event {
            duration_s: 120.0,
            ..ev(at(93, 0), VideoWatch) // exactly 7 days before t: the week before
        },
        ev(at(94, 0), ForumPost),
    ];
    for hour in 1..=6 {
        // Six completions of a five-lesson course: at most five count as progress.
        events.push(with_course(ev(at(95, hour), LessonComplete), C1));
    }
    events.extend([
        ev(at(96, 0), QuizAttempt), // no score
        Event {
            duration_s: 1800.0,
            ..ev(at(97, 0), VideoWatch)
        },
        ev(at(98, 0), Checkin),
        ev(at(98, 12), Checkin),
        ev(at(99, 12), Checkin),
        ev(at(99, 13), Checkin),
        ev(at(99, 18), Login),
        ev(at(99, 20), RefundPageView),
        ev(at(100, 0), Login), // exactly at t: features see it
        // After t: no feature may change because of these.
        ev(at(100, 0) + 1, Login),
        ev(at(100, 12), Checkin),
        Event {
            amount: 99.0,
            ..ev(at(101, 0), Payment)
        },
    ]);
    events
}

fn profile() -> Profile<'static> {
    Profile {
        signup_at: at(50, 0),
        plan: "monthly",
        acquisition_channel: "organic",
        device: None,
        numeric_attributes: &[],
        categorical_attributes: &[],
    }
}

#[test]
fn every_feature_of_a_hand_written_history() {
    let mut events = history();
    let t = at(100, 0);
    let row = compute(
        &profile(),
        SortedEvents::sort(&mut events),
        t,
        &LESSONS,
        &FeatureLayout::default(),
    );

    let expected: &[(&str, f64)] = &[
        ("days_since_last_login", 0.0),    // a login exactly at t
        ("days_since_last_activity", 0.0), // same
        ("logins_7d", 2.0),                // 99 18:00, 100 00:00
        ("logins_30d", 3.0),               // + day 76
        // Days before t with activity: 0,1,2,3,4,6 in the week; also 7,8,10,15,20,24,29.
        ("active_days_7d", 6.0),
        ("active_days_30d", 13.0),
        ("watch_minutes_7d", 30.0),                 // 1800 s
        ("watch_minutes_30d", 42.0),                // (600 + 120 + 1800) / 60
        ("watch_minutes_trend_7d", 18.0),           // 30 − (600 + 120) / 60
        ("courses_enrolled", 2.0),                  //
        ("lessons_completed", 8.0),                 // 2 + 6 events
        ("lessons_completed_30d", 6.0),             // the six of day 95
        ("completion_rate", 7.0 / 15.0),            // (2 + min(6, 5)) / (10 + 5)
        ("quiz_attempts_30d", 2.0),                 // days 71 and 96; day 70 is 30 days back
        ("quiz_mean_score_30d", 0.9),               // day 96 has no score
        ("quiz_mean_score_last10", 0.7),            // (0.5 + 0.9) / 2
        ("forum_posts_30d", 1.0),                   //
        ("checkins_30d", 5.0),                      // 90, 98, 98 12:00, 99 12:00, 99 13:00
        ("checkin_streak_days", 3.0),               // days 0, 1 (98 12:00) and 2 (98 00:00)
        ("days_since_last_community", 11.0 / 24.0), // check-in at 99 13:00
        ("live_classes_30d", 2.0),                  //
        ("live_mean_latency_ms_30d", 300.0),        // (200 + 400) / 2
        ("live_stalls_per_class_30d", 1.0),         // one class with known stalls
        ("refund_views_7d", 1.0),                   // 99 20:00
        ("refund_views_30d", 2.0),                  // + 86
        ("support_tickets_7d", 0.0),                // day 90 is 10 days back
        ("support_tickets_30d", 1.0),               //
        ("payments_total", 2.0),                    // the payment after t does not count
        ("amount_paid_total", 40.0),                //
        ("days_since_last_payment", 13.5),          // 86 12:00
        ("coupon_redemptions_total", 1.0),          //
        ("cancellations_total", 1.0),               //
        ("tenure_days", 50.0),                      //
    ];
    assert_eq!(
        expected.len(),
        NUMERIC.len(),
        "every numeric feature is checked"
    );
    for (name, want) in expected {
        let got = row
            .number(name)
            .unwrap_or_else(|| panic!("no feature {name}"));
        assert!(
            (got - want).abs() < 1e-12,
            "{name}: got {got}, hand-computed {want}"
        );
    }

    let expected_categories: &[(&str, Option<&str>)] = &[
        ("plan", Some("monthly")),
        ("acquisition_channel", Some("organic")),
        ("device", None), // unknown stays unknown
        ("lifecycle_stage", Some("active")),
    ];
    assert_eq!(expected_categories.len(), CATEGORICAL.len());
    for (name, want) in expected_categories {
        assert_eq!(row.category(name), Some(*want), "{name}");
    }

    // The login 1 ms after t keeps the learner; a cancellation in the horizon would not.
    let end = at(200, 0);
    let status = label_status(
        LabelDefinition::Either,
        profile().signup_at,
        &events,
        t,
        30 * DAY_MS,
        end,
    );
    assert_eq!(status, LabelStatus::Labelled { churned: false });
}

#[test]
fn nothing_to_average_is_missing_not_zero() {
    let events = [ev(at(10, 0), EventType::Login)];
    let t = at(12, 0);
    let row = compute(
        &profile_at(5),
        SortedEvents::check(&events).unwrap(),
        t,
        &LESSONS,
        &FeatureLayout::default(),
    );
    for name in [
        "completion_rate",
        "quiz_mean_score_30d",
        "quiz_mean_score_last10",
        "days_since_last_community",
        "live_mean_latency_ms_30d",
        "live_stalls_per_class_30d",
        "days_since_last_payment",
    ] {
        assert!(
            row.number(name).is_some_and(f64::is_nan),
            "{name} should be NaN"
        );
    }
    for name in ["watch_minutes_30d", "payments_total", "checkin_streak_days"] {
        assert_eq!(row.number(name), Some(0.0), "{name} is a true zero");
    }
    assert_eq!(row.number("days_since_last_login"), Some(2.0));
    assert_eq!(row.category("lifecycle_stage"), Some(Some("new")));
}

#[test]
fn a_learner_quiet_for_a_week_is_lapsing_and_streaks_need_today_or_yesterday() {
    let events = [
        ev(at(10, 0), EventType::Checkin),
        ev(at(11, 0), EventType::Checkin),
        ev(at(12, 0), EventType::Login),
    ];
    let row = compute(
        &profile_at(0),
        SortedEvents::check(&events).unwrap(),
        at(20, 0),
        &LESSONS,
        &FeatureLayout::default(),
    );
    assert_eq!(row.category("lifecycle_stage"), Some(Some("lapsing")));
    assert_eq!(row.number("checkin_streak_days"), Some(0.0));
    // Yesterday (day 1 before t) and the day before: a streak of 2.
    let row = compute(
        &profile_at(0),
        SortedEvents::check(&events[..2]).unwrap(),
        at(12, 12),
        &LESSONS,
        &FeatureLayout::default(),
    );
    assert_eq!(row.number("checkin_streak_days"), Some(2.0));
}

#[test]
fn unsorted_events_are_refused_or_sorted() {
    let mut events = vec![
        ev(at(3, 0), EventType::Login),
        ev(at(2, 0), EventType::Login),
    ];
    assert_eq!(SortedEvents::check(&events).unwrap_err().index, 1);
    let sorted = SortedEvents::sort(&mut events);
    assert_eq!(sorted.as_slice()[0].ts, at(2, 0));
}

fn profile_at(signup_day: i64) -> Profile<'static> {
    Profile {
        signup_at: at(signup_day, 0),
        ..profile()
    }
}
