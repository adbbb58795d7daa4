//! The booster behind `churn.GBDTClassifier`: churn-gbdt's training,
//! prediction and exact TreeSHAP on numpy arrays.

use std::borrow::Cow;

use churn_gbdt::{Explainer, FeatureKind, GbdtParams, Model, Predictor, Schema, TrainData};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ChurnError;

fn gbdt_error(e: churn_gbdt::GbdtError) -> PyErr {
    ChurnError::new_err(e.to_string())
}

/// The rows of a 2-D array, row-major: numpy's own buffer when it is
/// C-contiguous (no copy), else a copy in row order.
fn rows<'a>(x: &'a PyReadonlyArray2<'_, f64>) -> Cow<'a, [f64]> {
    match x.as_slice() {
        Ok(slice) => Cow::Borrowed(slice),
        Err(_) => Cow::Owned(x.as_array().iter().copied().collect()),
    }
}

/// `params` (a JSON object of some of churn-gbdt's parameters) over the
/// defaults; an unknown name is an error that names it.
fn params_over_defaults(params: &str) -> PyResult<GbdtParams> {
    let error = |e: serde_json::Error| ChurnError::new_err(format!("params: {e}"));
    let given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(params).map_err(error)?;
    let mut merged = serde_json::to_value(GbdtParams::default()).map_err(error)?;
    if let Some(fields) = merged.as_object_mut() {
        for (name, value) in given {
            fields.insert(name, value);
        }
    }
    serde_json::from_value(merged).map_err(error)
}

/// A pool of `threads` workers (0: rayon's default, one per core).
fn pool(threads: usize) -> PyResult<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ChurnError::new_err(format!("n_jobs: {e}")))
}

/// A fitted churn-gbdt model.
#[pyclass(module = "churn._churn", name = "Booster", frozen)]
pub struct Booster {
    model: Model,
    predictor: Predictor,
    explainer: std::sync::OnceLock<Explainer>,
    valid_metric: Vec<f64>,
}

impl Booster {
    fn new(model: Model, valid_metric: Vec<f64>) -> Self {
        Booster {
            predictor: Predictor::new(&model),
            model,
            explainer: std::sync::OnceLock::new(),
            valid_metric,
        }
    }

    /// The rows of `x` (checked against the model's width) and the pool
    /// that scores them.
    fn rows_and_pool<'a>(
        &self,
        x: &'a PyReadonlyArray2<'_, f64>,
        n_jobs: usize,
    ) -> PyResult<(Cow<'a, [f64]>, rayon::ThreadPool)> {
        let width = x.shape()[1];
        if width != self.model.num_features() {
            return Err(ChurnError::new_err(format!(
                "X has {width} features, the model was fitted on {}",
                self.model.num_features()
            )));
        }
        Ok((rows(x), pool(n_jobs)?))
    }
}

#[pymethods]
impl Booster {
    /// Fits on `x` (rows × features, NaN missing; categorical columns hold
    /// non-negative integer codes) and 0/1 labels `y`. `params` is JSON of
    /// churn-gbdt's parameters (LightGBM's names); an unknown one is an error.
    #[staticmethod]
    #[pyo3(signature = (x, y, *, params, feature_names, categorical, sample_weight = None, valid_x = None, valid_y = None, n_jobs = 0))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f64>,
        y: PyReadonlyArray1<'_, f64>,
        params: &str,
        feature_names: Vec<String>,
        categorical: Vec<usize>,
        sample_weight: Option<PyReadonlyArray1<'_, f64>>,
        valid_x: Option<PyReadonlyArray2<'_, f64>>,
        valid_y: Option<PyReadonlyArray1<'_, f64>>,
        n_jobs: usize,
    ) -> PyResult<Booster> {
        let params = params_over_defaults(params)?.check().map_err(gbdt_error)?;
        let width = x.shape()[1];
        if feature_names.len() != width {
            return Err(ChurnError::new_err(format!(
                "{} feature names for {width} columns",
                feature_names.len()
            )));
        }
        let mut kinds = vec![FeatureKind::Numeric; width];
        for &j in &categorical {
            let kind = kinds
                .get_mut(j)
                .ok_or_else(|| ChurnError::new_err(format!("categorical column {j} of {width}")))?;
            *kind = FeatureKind::Categorical;
        }
        let schema = Schema {
            names: feature_names,
            kinds,
        };
        let features = rows(&x);
        let labels = y.as_array().to_vec();
        let weights = sample_weight.map(|w| w.as_array().to_vec());
        let valid = match (&valid_x, &valid_y) {
            (Some(vx), Some(vy)) => {
                if vx.shape()[1] != width {
                    return Err(ChurnError::new_err(format!(
                        "eval_set X has {} features, X has {width}",
                        vx.shape()[1]
                    )));
                }
                Some((rows(vx), vy.as_array().to_vec()))
            }
            (None, None) => None,
            _ => return Err(ChurnError::new_err("valid_x and valid_y go together")),
        };
        let pool = pool(n_jobs)?;
        let (model, log) = py
            .detach(|| {
                pool.install(|| {
                    let data = TrainData {
                        features: &features,
                        labels: &labels,
                        weights: weights.as_deref(),
                    };
                    let valid = valid.as_ref().map(|(features, labels)| TrainData {
                        features,
                        labels,
                        weights: None,
                    });
                    churn_gbdt::train(&params, &schema, &data, valid.as_ref())
                })
            })
            .map_err(gbdt_error)?;
        Ok(Booster::new(model, log.valid_metric))
    }

    /// Margins (log-odds), one per row, on `n_jobs` threads (0: all cores).
    #[pyo3(signature = (x, n_jobs = 0))]
    fn predict_raw<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        n_jobs: usize,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (features, pool) = self.rows_and_pool(&x, n_jobs)?;
        let margins = py
            .detach(|| pool.install(|| self.predictor.predict_raw_batch(&features)))
            .map_err(gbdt_error)?;
        Ok(margins.into_pyarray(py))
    }

    /// Exact TreeSHAP values: rows × (features + 1), the last column the
    /// base value; each row sums to its margin. On `n_jobs` threads.
    #[pyo3(signature = (x, n_jobs = 0))]
    fn shap_values<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        n_jobs: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (features, pool) = self.rows_and_pool(&x, n_jobs)?;
        let height = x.shape()[0];
        let stride = self.model.num_features() + 1;
        let values = py
            .detach(|| {
                let explainer = self.explainer.get_or_init(|| Explainer::new(&self.model));
                pool.install(|| explainer.contributions_batch(&features))
            })
            .map_err(gbdt_error)?;
        let values = ndarray::Array2::from_shape_vec((height, stride), values)
            .map_err(|e| ChurnError::new_err(e.to_string()))?;
        Ok(values.into_pyarray(py))
    }

    /// Per feature: (total gain, number of splits).
    fn importance(&self) -> Vec<(f64, usize)> {
        self.model
            .split_importance()
            .into_iter()
            .map(|f| (f.gain, f.splits))
            .collect()
    }

    /// The validation metric after each round (empty without an eval set).
    #[getter]
    fn valid_metric(&self) -> Vec<f64> {
        self.valid_metric.clone()
    }

    /// The round kept by early stopping (1-based), if it ran.
    #[getter]
    fn best_iteration(&self) -> Option<usize> {
        self.model.best_iteration
    }

    /// The TreeSHAP base value: the mean training margin.
    #[getter]
    fn expected_value(&self) -> f64 {
        self.model.expected_value()
    }

    /// Number of trees.
    #[getter]
    fn num_trees(&self) -> usize {
        self.model.trees.len()
    }

    /// The model as bytes (postcard; what pickling stores).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes =
            postcard::to_allocvec(&self.model).map_err(|e| ChurnError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A booster from [`Booster::to_bytes`].
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Booster> {
        let model: Model = postcard::from_bytes(bytes)
            .map_err(|e| ChurnError::new_err(format!("not a churn booster: {e}")))?;
        model.validate().map_err(gbdt_error)?;
        Ok(Booster::new(model, Vec::new()))
    }

    /// The whole model as readable JSON.
    fn to_json(&self) -> PyResult<String> {
        self.model.to_json().map_err(gbdt_error)
    }
}
