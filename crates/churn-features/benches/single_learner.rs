//! The request path: one learner's features from raw events (DESIGN.md target
//! ≤ 20 µs for 1,000 events), sorted already and arriving unsorted.

use std::hint::black_box;

use churn_core::{DAY_MS, Event, EventType};
use churn_features::{FeatureLayout, Profile, SortedEvents, compute};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// A busy learner: `n` events over 200 days, in the simulator's mix of types.
fn history(n: usize) -> Vec<Event> {
    use EventType::*;
    const MIX: [EventType; 16] = [
        Login,
        VideoWatch,
        VideoWatch,
        VideoWatch,
        LessonComplete,
        QuizAttempt,
        Login,
        VideoWatch,
        Checkin,
        ForumPost,
        LiveClass,
        LessonComplete,
        QuizAttempt,
        RefundPageView,
        CourseEnroll,
        Payment,
    ];
    let span = 200 * DAY_MS;
    (0..n)
        .map(|i| {
            let mut e = Event::new(i as i64 * span / n as i64, 0, MIX[i % MIX.len()]);
            e.course = (i / 97 % 5) as u32;
            e.duration_s = 300.0 + (i % 7) as f64 * 60.0;
            e.score = (i % 10) as f64 / 10.0;
            e.amount = 19.0;
            e.latency_ms = 120.0 + (i % 13) as f64;
            e.stalls = (i % 3) as f64;
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let profile = Profile {
        signup_at: 0,
        plan: "monthly",
        acquisition_channel: "search",
        device: Some("android"),
        numeric_attributes: &[],
        categorical_attributes: &[],
    };
    let lessons = [20, 30, 12, 40, 25];
    let layout = FeatureLayout::default();
    let mut group = c.benchmark_group("single_learner_features");
    for n in [100usize, 1_000, 10_000] {
        let events = history(n);
        let t = events[n - 1].ts;
        group.bench_with_input(BenchmarkId::new("sorted", n), &events, |b, events| {
            let sorted = SortedEvents::check(events).expect("sorted");
            b.iter(|| compute(&profile, black_box(sorted), black_box(t), &lessons, &layout));
        });
        let mut shuffled = events.clone();
        shuffled.reverse();
        group.bench_with_input(BenchmarkId::new("unsorted", n), &shuffled, |b, raw| {
            b.iter(|| {
                let mut copy = raw.clone();
                let sorted = SortedEvents::sort(black_box(&mut copy));
                compute(&profile, sorted, black_box(t), &lessons, &layout).numeric[0]
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
