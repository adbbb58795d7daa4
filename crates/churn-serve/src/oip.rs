//! The Open Inference Protocol v2 routes (KServe / Triton clients) and their
//! request bodies: one input tensor per feature (`FP64`/`FP32`/`INT*` for
//! numeric features, `BYTES` for categorical ones), each of the same length;
//! `null` is a missing value (an extension: JSON has no NaN).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use churn_model::Kind;
use serde_json::{Value, json};

use crate::api::OwnedInput;
use crate::auth::check_predict_token;
use crate::body::json_bytes;
use crate::error::ApiError;
use crate::info::unknown_model;
use crate::state::{AppState, Served};

const NUMERIC_TYPES: [&str; 10] = [
    "FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT8",
];

/// The request id and the rows of an infer request.
pub fn parse_infer(
    value: &Value,
    served: &Served,
    max_batch: usize,
) -> Result<(Option<String>, Vec<OwnedInput>), ApiError> {
    let Some(map) = value.as_object() else {
        return Err(ApiError::field(
            "",
            "the body must be an object with \"inputs\"",
        ));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["id", "inputs", "outputs", "parameters"].contains(&k.as_str()))
    {
        return Err(ApiError::field(key.clone(), "unknown field"));
    }
    let id = match map.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::field("id", "must be a string")),
    };
    let Some(Value::Array(inputs)) = map.get("inputs") else {
        return Err(ApiError::field(
            "inputs",
            "inputs must be an array of tensors",
        ));
    };
    let schema = served.artifact.model.schema();
    let numeric_len = schema.numeric_len();
    let mut columns: Vec<Option<&Vec<Value>>> = vec![None; schema.features.len()];
    let mut rows: Option<usize> = None;
    for (t, tensor) in inputs.iter().enumerate() {
        let at = format!("inputs[{t}]");
        let Some(tensor) = tensor.as_object() else {
            return Err(ApiError::field(at, "a tensor must be an object"));
        };
        let name = match tensor.get("name") {
            Some(Value::String(n)) => n,
            _ => return Err(ApiError::field(format!("{at}.name"), "must be a string")),
        };
        let Some(&j) = served.index.get(name) else {
            return Err(ApiError::field(
                format!("{at}.name"),
                format!("model {} has no input {name:?}", served.name()),
            ));
        };
        if columns[j].is_some() {
            return Err(ApiError::field(
                format!("{at}.name"),
                format!("input {name:?} twice"),
            ));
        }
        let datatype = tensor.get("datatype").and_then(Value::as_str).unwrap_or("");
        let kind_ok = match schema.features[j].kind {
            Kind::Numeric => NUMERIC_TYPES.contains(&datatype),
            Kind::Categorical => datatype == "BYTES",
        };
        if !kind_ok {
            return Err(ApiError::field(
                format!("{at}.datatype"),
                format!(
                    "{name} is {}: datatype must be {}",
                    if schema.features[j].kind == Kind::Numeric {
                        "numeric"
                    } else {
                        "categorical"
                    },
                    if schema.features[j].kind == Kind::Numeric {
                        "FP64 (or another number type)"
                    } else {
                        "BYTES"
                    }
                ),
            ));
        }
        let Some(Value::Array(data)) = tensor.get("data") else {
            return Err(ApiError::field(
                format!("{at}.data"),
                "data must be a flat array",
            ));
        };
        let shape: Vec<u64> = match tensor.get("shape") {
            Some(Value::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64())
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| {
                    ApiError::field(format!("{at}.shape"), "shape must be whole numbers")
                })?,
            _ => {
                return Err(ApiError::field(
                    format!("{at}.shape"),
                    "shape must be an array",
                ));
            }
        };
        let elements: u64 = shape.iter().product();
        if shape.is_empty()
            || shape.len() > 2
            || (shape.len() == 2 && shape[1] != 1)
            || elements != data.len() as u64
        {
            return Err(ApiError::field(
                format!("{at}.shape"),
                format!(
                    "shape {shape:?} does not describe {} values in one column",
                    data.len()
                ),
            ));
        }
        match rows {
            None => rows = Some(data.len()),
            Some(n) if n != data.len() => {
                return Err(ApiError::field(
                    format!("{at}.data"),
                    format!("{} values; the other inputs have {n}", data.len()),
                ));
            }
            Some(_) => {}
        }
        columns[j] = Some(data);
    }
    if let Some(missing) = columns.iter().position(Option::is_none) {
        return Err(ApiError::field(
            "inputs",
            format!("missing input {:?}", schema.features[missing].name),
        ));
    }
    let n = rows.unwrap_or(0);
    if n == 0 || n > max_batch {
        return Err(ApiError::field(
            "inputs",
            format!("1 to {max_batch} rows per request, got {n}"),
        ));
    }
    let mut out = Vec::with_capacity(n);
    for r in 0..n {
        let mut input = OwnedInput {
            numeric: vec![f64::NAN; numeric_len],
            categorical: vec![None; schema.features.len() - numeric_len],
        };
        for (j, column) in columns.iter().enumerate() {
            let value = column.map(|c| &c[r]).unwrap_or(&Value::Null);
            let field = || format!("inputs[{}].data[{r}]", schema.features[j].name);
            match (j < numeric_len, value) {
                (_, Value::Null) => {}
                (true, Value::Number(x)) => match x.as_f64() {
                    Some(v) if v.is_finite() => input.numeric[j] = v,
                    _ => return Err(ApiError::field(field(), "not a finite number")),
                },
                (false, Value::String(s)) => input.categorical[j - numeric_len] = Some(s.clone()),
                _ => return Err(ApiError::field(field(), "wrong type for this input")),
            }
        }
        out.push(input);
    }
    Ok((id, out))
}

pub async fn oip_server() -> Response {
    axum::Json(json!({"name": "churn", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
        .into_response()
}

pub async fn oip_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let deployment = state.deployment.load();
    let (_, served) = deployment.find(&name).ok_or_else(|| unknown_model(&name))?;
    let inputs: Vec<Value> = served
        .artifact
        .model
        .schema()
        .features
        .iter()
        .map(|f| {
            json!({"name": f.name, "datatype": if f.kind == churn_model::Kind::Numeric { "FP64" } else { "BYTES" }, "shape": [-1]})
        })
        .collect();
    Ok(axum::Json(json!({
        "name": served.name(),
        "versions": [served.version()],
        "platform": "churn",
        "inputs": inputs,
        "outputs": [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "margin", "datatype": "FP64", "shape": [-1]},
        ],
    }))
    .into_response())
}

pub async fn oip_model_ready(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    let deployment = state.deployment.load();
    match deployment.find(&name) {
        Some(_) => axum::Json(json!({"name": name, "ready": true})).into_response(),
        None => unknown_model(&name).into_response(),
    }
}

pub async fn oip_infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    let deployment = state.deployment.load_full();
    if deployment.find(&name).is_none() {
        return Err(unknown_model(&name));
    }
    let bytes = json_bytes(&headers, body).await?;
    let inline = bytes.len() <= crate::predict::INLINE_BYTES;
    let max_batch = state.config.max_batch;
    let deployment = deployment.clone();
    crate::predict::score_where_it_fits(inline, move || {
        let value = crate::api::parse_json(&bytes)?;
        let Some((_, served)) = deployment.find(&name) else {
            return Err(unknown_model(&name));
        };
        infer(served, &value, max_batch)
    })
    .await
}

/// The answer to an infer request for `served`.
fn infer(served: &Served, value: &Value, max_batch: usize) -> Result<Response, ApiError> {
    let (id, rows) = parse_infer(value, served, max_batch)?;
    let mut probabilities = Vec::with_capacity(rows.len());
    let mut margins = Vec::with_capacity(rows.len());
    for input in &rows {
        let categories = input.categories();
        let model_input = churn_model::Input {
            numeric: &input.numeric,
            categorical: &categories,
        };
        let margin = served.artifact.model.margin(&model_input).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                e.to_string(),
            )
        })?;
        margins.push(margin);
        probabilities.push(
            served
                .artifact
                .model
                .model()
                .calibration
                .probability(margin),
        );
    }
    let n = rows.len();
    Ok(axum::Json(json!({
        "model_name": served.name(),
        "model_version": served.version(),
        "id": id,
        "outputs": [
            {"name": "churn_probability", "datatype": "FP64", "shape": [n], "data": probabilities},
            {"name": "margin", "datatype": "FP64", "shape": [n], "data": margins},
        ],
    }))
    .into_response())
}
