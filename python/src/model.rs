//! `churn.load_model`: a trained model artifact (a `churn train` output or a
//! name in a models directory) scoring and explaining feature tables.

use std::path::Path;

use churn_model::{Artifact, Input, InputSchema, Kind, PreparedModel};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use polars::prelude::{DataFrame, DataType};
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::ChurnError;
use crate::arrow::import;

/// A table's columns in a model's schema order: numbers (NaN missing), then
/// categories (`None` missing).
struct Rows {
    numeric: Vec<Vec<f64>>,
    categorical: Vec<Vec<Option<String>>>,
    height: usize,
}

impl Rows {
    /// Reads the schema's features by name from `frame`; a missing or
    /// mistyped column is an error that names it.
    fn read(frame: &DataFrame, schema: &InputSchema) -> PyResult<Rows> {
        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        for feature in &schema.features {
            let column = frame.column(&feature.name).map_err(|_| {
                ChurnError::new_err(format!(
                    "table: no column {:?}, which the model reads",
                    feature.name
                ))
            })?;
            let wrong = |e: polars::prelude::PolarsError| {
                ChurnError::new_err(format!("table: column {:?}: {e}", feature.name))
            };
            match feature.kind {
                Kind::Numeric => {
                    let values = column.cast(&DataType::Float64).map_err(wrong)?;
                    let values = values.f64().map_err(wrong)?;
                    numeric.push(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
                }
                Kind::Categorical => {
                    let values = column.cast(&DataType::String).map_err(wrong)?;
                    let values = values.str().map_err(wrong)?;
                    categorical.push(values.iter().map(|v| v.map(str::to_owned)).collect());
                }
            }
        }
        Ok(Rows {
            numeric,
            categorical,
            height: frame.height(),
        })
    }

    /// Runs `f` on every row's input, in parallel, results in row order.
    fn map<T: Send>(&self, f: impl Fn(&Input<'_>) -> T + Sync) -> Vec<T> {
        (0..self.height)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(numeric, categorical): &mut (Vec<f64>, Vec<Option<&str>>), row| {
                    numeric.clear();
                    numeric.extend(self.numeric.iter().map(|c| c[row]));
                    categorical.clear();
                    categorical.extend(self.categorical.iter().map(|c| c[row].as_deref()));
                    f(&Input {
                        numeric,
                        categorical,
                    })
                },
            )
            .collect()
    }
}

/// Base values (one per row) and contributions (rows × features).
type Explained<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray2<f64>>);

/// A trained churn model: probabilities, exact contributions, top factors.
#[pyclass(module = "churn._churn", name = "Model", frozen)]
pub struct Model {
    artifact: Artifact,
}

impl Model {
    fn prepared(&self) -> &PreparedModel {
        &self.artifact.model
    }

    fn rows(&self, table: &Bound<'_, PyAny>) -> PyResult<Rows> {
        let frame = import(table, "table")?;
        Rows::read(&frame, self.prepared().schema())
    }
}

fn model_error(e: churn_model::ModelError) -> PyErr {
    ChurnError::new_err(e.to_string())
}

/// Loads a model: a directory holding `model.json` and `model.bin`, or a
/// name (`churn-gbdt`, `churn-gbdt@3`, `production`) in `models_dir`.
#[pyfunction]
#[pyo3(signature = (path_or_name, models_dir = "models"))]
pub fn load_model(py: Python<'_>, path_or_name: &str, models_dir: &str) -> PyResult<Model> {
    let models_dir = Path::new(models_dir).to_owned();
    let reference = path_or_name.to_owned();
    let artifact = py
        .detach(move || {
            let dir = Path::new(&reference);
            if dir.join("model.json").is_file() {
                churn_model::artifact::load(dir)
            } else {
                churn_model::artifact::resolve(&reference, &models_dir)
                    .and_then(|dir| churn_model::artifact::load(&dir))
            }
        })
        .map_err(model_error)?;
    Ok(Model { artifact })
}

#[pymethods]
impl Model {
    /// Calibrated churn probabilities, one per row of `table`.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        table: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let rows = self.rows(table)?;
        let model = self.prepared();
        let found = py.detach(|| rows.map(|input| model.probability(input)));
        let probabilities = found
            .into_iter()
            .collect::<Result<Vec<f64>, _>>()
            .map_err(model_error)?;
        Ok(probabilities.into_pyarray(py))
    }

    /// Per row: the base value and each feature's log-odds contribution
    /// (exact TreeSHAP for gbdt, the logistic terms); base + the row's sum
    /// is the model's margin before calibration.
    fn explain<'py>(&self, py: Python<'py>, table: &Bound<'py, PyAny>) -> PyResult<Explained<'py>> {
        let rows = self.rows(table)?;
        let model = self.prepared();
        let width = model.schema().features.len();
        let found = py.detach(|| rows.map(|input| model.explain(input)));
        let mut base = Vec::with_capacity(rows.height);
        let mut contributions = Vec::with_capacity(rows.height * width);
        for prediction in found {
            let prediction = prediction.map_err(model_error)?;
            base.push(prediction.base_value);
            contributions.extend_from_slice(&prediction.contributions);
        }
        let contributions = ndarray::Array2::from_shape_vec((rows.height, width), contributions)
            .map_err(|e| ChurnError::new_err(e.to_string()))?;
        Ok((base.into_pyarray(py), contributions.into_pyarray(py)))
    }

    /// Per row, the `k` features that push the risk up the most: (feature,
    /// contribution) pairs, largest first (the server's `top_factors`).
    #[pyo3(signature = (table, k = 3))]
    fn top_factors(
        &self,
        py: Python<'_>,
        table: &Bound<'_, PyAny>,
        k: usize,
    ) -> PyResult<Vec<Vec<(String, f64)>>> {
        let rows = self.rows(table)?;
        let model = self.prepared();
        let names: Vec<&str> = model.schema().names().collect();
        let found = py.detach(|| {
            rows.map(|input| {
                model.explain(input).map(|p| {
                    p.top_factors(k)
                        .into_iter()
                        .map(|f| (names[f.feature].to_owned(), f.contribution))
                        .collect::<Vec<_>>()
                })
            })
        });
        found
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(model_error)
    }

    /// The feature names the model reads, in order.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.prepared()
            .schema()
            .names()
            .map(str::to_owned)
            .collect()
    }

    /// `gbdt` or `logistic`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.prepared().model().kind()
    }

    /// The model card (`model.json`) as JSON text.
    #[getter]
    fn card_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.artifact.card).map_err(|e| ChurnError::new_err(e.to_string()))
    }

    /// The directory the model was loaded from.
    #[getter]
    fn path(&self) -> String {
        self.artifact.dir.display().to_string()
    }
}
