//! Criterion benches of the serving paths on a seeded 200-tree, 31-leaf model
//! over 40 features: single-row predict, batch predict, fast TreeSHAP against
//! the textbook recursion. The side-by-side with LightGBM is
//! `benches/gbdt_vs_lightgbm.py` at the workspace root.

use std::hint::black_box;

use churn_gbdt::shap::reference_contributions;
use churn_gbdt::{Explainer, FeatureKind, GbdtParams, Model, Predictor, Schema, TrainData, train};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const WIDTH: usize = 40;

fn data(rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(rows * WIDTH);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..WIDTH)
            .map(|j| {
                if next() < 0.05 {
                    f64::NAN
                } else {
                    next() * 4.0 - 2.0 + j as f64 * 0.0
                }
            })
            .collect();
        let logit = row[0].max(0.0) - 0.8 * row[1].abs()
            + 0.5 * (row[2] * row[3])
            + 0.3 * row[4..10].iter().filter(|v| v.is_finite()).sum::<f64>();
        y.push(if next() < 1.0 / (1.0 + (-logit).exp()) {
            1.0
        } else {
            0.0
        });
        x.extend(row);
    }
    (x, y)
}

fn model() -> (Model, Vec<f64>) {
    let (x, y) = data(50_000, 1);
    let params = GbdtParams {
        num_iterations: 200,
        num_leaves: 31,
        ..GbdtParams::default()
    }
    .check()
    .expect("valid parameters");
    let schema = Schema {
        names: (0..WIDTH).map(|i| format!("f{i}")).collect(),
        kinds: vec![FeatureKind::Numeric; WIDTH],
    };
    let (model, _) = train(
        &params,
        &schema,
        &TrainData {
            features: &x,
            labels: &y,
            weights: None,
        },
        None,
    )
    .expect("trains");
    let (test, _) = data(10_000, 2);
    (model, test)
}

fn benches(c: &mut Criterion) {
    let (model, rows) = model();
    let predictor = Predictor::new(&model);
    let explainer = Explainer::new(&model);
    // Cycle through many rows: one repeated row lets the branch predictor learn
    // its path and reports an unrealistically fast figure.
    let count = rows.len() / WIDTH;
    let row_at = |i: usize| &rows[(i % count) * WIDTH..(i % count + 1) * WIDTH];
    let mut i = 0;
    c.bench_function("predict/single_row", |b| {
        b.iter(|| {
            i += 1;
            predictor.predict_raw(black_box(row_at(i)))
        })
    });
    let mut group = c.benchmark_group("predict/batch");
    for n in [1_000usize, 10_000] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| predictor.predict_raw_batch(black_box(&rows[..n * WIDTH])))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("treeshap/single_row");
    group.bench_function("lookup_blocks", |b| {
        b.iter(|| {
            i += 1;
            explainer.contributions(black_box(row_at(i)))
        })
    });
    let integrated = Explainer::with_table_budget(&model, 0);
    group.bench_function("integrated_per_row", |b| {
        b.iter(|| {
            i += 1;
            integrated.contributions(black_box(row_at(i)))
        })
    });
    group.bench_function("reference_recursion", |b| {
        b.iter(|| {
            i += 1;
            reference_contributions(&model, black_box(row_at(i)))
        })
    });
    group.finish();
}

criterion_group!(name = gbdt; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(gbdt);
