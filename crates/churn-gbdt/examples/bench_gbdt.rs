//! Our side of `benches/gbdt_vs_lightgbm.py`: trains, predicts and explains on
//! the dataset the script wrote, and times LightGBM's own model in our engine.
//! Prints one JSON object. Not a test.
//!
//! Usage: bench_gbdt DATA.bin LIGHTGBM_MODEL.txt THREADS

use std::io::Read;
use std::time::Instant;

use churn_gbdt::metric::auc;
use churn_gbdt::shap::reference_contributions;
use churn_gbdt::{
    Explainer, FeatureKind, GbdtParams, Model, Predictor, Schema, TrainData, from_lightgbm_text,
    train,
};

struct Data {
    width: usize,
    categorical: Vec<usize>,
    train_x: Vec<f64>,
    train_y: Vec<f64>,
    test_x: Vec<f64>,
    test_y: Vec<f64>,
}

fn read_data(path: &str) -> Result<Data, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("{path}: {e}"))?;
    let mut at = 0usize;
    let mut u64s = |n: usize| -> Result<Vec<u64>, String> {
        let end = at + 8 * n;
        let slice = bytes.get(at..end).ok_or("truncated data file")?;
        at = end;
        Ok(slice
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    };
    let header = u64s(4)?;
    let (n_train, n_test, width, n_cat) = (
        header[0] as usize,
        header[1] as usize,
        header[2] as usize,
        header[3] as usize,
    );
    let categorical = u64s(n_cat)?.into_iter().map(|c| c as usize).collect();
    let mut f64s = |n: usize| -> Result<Vec<f64>, String> {
        Ok(u64s(n)?.into_iter().map(f64::from_bits).collect())
    };
    Ok(Data {
        width,
        categorical,
        train_x: f64s(n_train * width)?,
        train_y: f64s(n_train)?,
        test_x: f64s(n_test * width)?,
        test_y: f64s(n_test)?,
    })
}

/// Mean microseconds per row of `f` over `rows`, single-threaded.
fn per_row_us(rows: &[f64], width: usize, mut f: impl FnMut(&[f64])) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    for row in rows.chunks_exact(width) {
        f(row);
        n += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn timings(model: &Model, data: &Data, all_x: &[f64]) -> serde_json::Value {
    let width = data.width;
    let start = Instant::now();
    let margins = model.predict_raw_batch(all_x).unwrap_or_default();
    let batch_s = start.elapsed().as_secs_f64();
    let test_scores = model.predict_raw_batch(&data.test_x).unwrap_or_default();
    let test_auc = auc(&test_scores, &data.test_y, &vec![1.0; test_scores.len()]);
    let sample = &data.test_x[..(20_000 * width).min(data.test_x.len())];
    let mut sink = 0.0;
    let predictor = Predictor::new(model);
    let single_us = per_row_us(sample, width, |row| sink += predictor.predict_raw(row));
    let start = Instant::now();
    let explainer = Explainer::new(model);
    let explainer_build_ms = start.elapsed().as_secs_f64() * 1e3;
    let shap_rows = &data.test_x[..(2_000 * width).min(data.test_x.len())];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string());
    let shap_us = match &pool {
        Ok(pool) => pool.install(|| {
            per_row_us(shap_rows, width, |row| {
                sink += explainer.contributions(row)[0]
            })
        }),
        Err(_) => f64::NAN,
    };
    // The same explanations without lookup tables: every leaf integrated per row.
    let integrated = Explainer::with_table_budget(model, 0);
    let integrated_us = per_row_us(shap_rows, width, |row| {
        sink += integrated.contributions(row)[0]
    });
    let reference_rows = &data.test_x[..(200 * width).min(data.test_x.len())];
    let reference_us = per_row_us(reference_rows, width, |row| {
        sink += reference_contributions(model, row)[0]
    });
    serde_json::json!({
        "trees": model.trees.len(),
        "test_auc": test_auc,
        "batch_predict_rows": margins.len(),
        "batch_predict_s": batch_s,
        "batch_predict_us_per_row": batch_s * 1e6 / margins.len().max(1) as f64,
        "single_row_predict_us": single_us,
        "treeshap_us_per_row_1_thread": shap_us,
        "treeshap_reference_recursion_us_per_row": reference_us,
        "explainer_build_ms": explainer_build_ms,
        "explainer_table_mib": explainer.table_bytes() as f64 / (1u64 << 20) as f64,
        "treeshap_integrated_us_per_row": integrated_us,
        "checksum": sink,
    })
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (data_path, lightgbm_model, threads, train_only, quantized) = match args.as_slice() {
        [_, d, m, t] => (d, m, t, false, false),
        [_, d, m, t, mode] if mode == "train-only" => (d, m, t, true, false),
        [_, d, m, t, mode] if mode == "train-only-quantized" => (d, m, t, true, true),
        _ => {
            return Err(
                "usage: bench_gbdt DATA.bin LIGHTGBM_MODEL.txt THREADS [train-only | train-only-quantized]"
                    .into(),
            );
        }
    };
    let threads: usize = threads.parse().map_err(|_| "THREADS must be a number")?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| e.to_string())?;
    let data = read_data(data_path)?;
    let schema = Schema {
        names: (0..data.width).map(|i| format!("f{i}")).collect(),
        kinds: (0..data.width)
            .map(|i| {
                if data.categorical.contains(&i) {
                    FeatureKind::Categorical
                } else {
                    FeatureKind::Numeric
                }
            })
            .collect(),
    };
    let params = GbdtParams {
        num_iterations: 200,
        num_leaves: 31,
        learning_rate: 0.1,
        max_bin: 255,
        use_quantized_grad: quantized,
        ..GbdtParams::default()
    }
    .check()
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (model, log) = train(
        &params,
        &schema,
        &TrainData {
            features: &data.train_x,
            labels: &data.train_y,
            weights: None,
        },
        None,
    )
    .map_err(|e| e.to_string())?;
    let train_s = start.elapsed().as_secs_f64();
    if train_only {
        let scores = model
            .predict_raw_batch(&data.test_x)
            .map_err(|e| e.to_string())?;
        let test_auc = auc(&scores, &data.test_y, &vec![1.0; scores.len()]);
        println!(
            "{}",
            serde_json::json!({ "train_s": train_s, "bin_s": log.bin_seconds, "test_auc": test_auc })
        );
        return Ok(());
    }
    let all_x: Vec<f64> = data.train_x.iter().chain(&data.test_x).copied().collect();
    let ours = timings(&model, &data, &all_x);
    let text =
        std::fs::read_to_string(lightgbm_model).map_err(|e| format!("{lightgbm_model}: {e}"))?;
    let imported = from_lightgbm_text(&text).map_err(|e| e.to_string())?;
    let theirs_in_ours = timings(&imported, &data, &all_x);
    let out = serde_json::json!({
        "train_s": train_s,
        "bin_s": log.bin_seconds,
        "threads": threads,
        "our_model": ours,
        "lightgbm_model_in_our_engine": theirs_in_ours,
    });
    println!("{out}");
    Ok(())
}
