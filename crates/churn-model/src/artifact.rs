//! Model artifacts on disk: `models/<name>/<version>/{model.bin, model.json}`.
//!
//! `model.bin` is the postcard encoding of the format version and the
//! [`ChurnModel`]: deterministic bytes for the same model. `model.json` is the
//! model card, which records the SHA-256 of `model.bin`. A version is a
//! sortable UTC stamp and the first 6 hex digits of that hash
//! (`20261125T153000Z-3f2a9c`), so `<name>` alone means the highest version.
//! Writing goes to a temporary directory renamed into place, so a reader never
//! sees half an artifact.

use std::path::{Path, PathBuf};

use churn_core::LabelDefinition;
use churn_features::FeatureSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;
use crate::model::{ChurnModel, PreparedModel};
use crate::schema::{InputFeature, Kind};

/// Version of the `model.bin` layout; loading refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// What `model.bin` holds.
#[derive(Serialize, Deserialize)]
struct Body {
    format_version: u32,
    model: ChurnModel,
}

/// The model card (`model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format_version: u32,
    pub name: String,
    pub version: String,
    /// `gbdt` or `logistic`.
    pub kind: String,
    /// Input features in order, with kinds, descriptions and category vocabularies.
    pub features: Vec<InputFeature>,
    /// `none`, `platt` or `isotonic`.
    pub calibration: String,
    /// Always `log_odds`: contributions are on the margin scale, before calibration.
    pub contribution_scale: String,
    /// What the model was trained on: data fingerprint, period, row counts.
    pub training: Training,
    pub seed: u64,
    /// Every parameter of the fit.
    pub parameters: serde_json::Value,
    /// Metrics overall and by segment, with intervals.
    pub metrics: serde_json::Value,
    /// RFC 3339.
    pub created_at: String,
    /// Wall time of each phase of the run that made the model, in order
    /// (empty for an imported model, or a card from before they were kept).
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    pub crate_version: String,
    /// Hex SHA-256 of `model.bin`.
    pub sha256: String,
}

/// What a model was made from, by how it was made (the card's `training`,
/// tagged by `mode`). Written by `churn train` and `churn import-lightgbm`,
/// read by scoring (the label horizon) and the server (the course
/// catalogue): a card without a field its mode needs does not load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Training {
    /// `churn train --data`: churn's features and labels from a data directory.
    ChurnData(ChurnDataTraining),
    /// `churn train --features`: any table of numeric and categorical columns.
    Table(TableTraining),
    /// `churn import-lightgbm`.
    ImportedLightgbm(ImportedTraining),
}

/// A model trained on churn's features of a data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnDataTraining {
    pub data: String,
    /// SHA-256 over the data directory's table files.
    pub data_sha256: String,
    /// Spacing of the as-of times, e.g. `14d`.
    pub every: String,
    /// The label horizon, e.g. `30d`.
    pub horizon: String,
    /// How the rows were split (method, as-of times, row counts).
    pub split: serde_json::Value,
    /// The courses the features were computed with (the card's `courses`,
    /// `course_ends`, `course_starts` and `course_deadlines` keys).
    #[serde(flatten)]
    pub catalogue: CourseCatalogue,
    /// What "churned" meant for the labels. Cards written before the setting
    /// existed lack it, and were all `either`.
    #[serde(default)]
    pub label: LabelDefinition,
    /// The custom event types that counted as activity (the data's
    /// `contract.toml`): the server reads raw events with the same rule.
    #[serde(default)]
    pub activity_types: Vec<String>,
    /// The custom event types and learner attributes the model reads besides
    /// the registry's features, chosen from the training data: every path
    /// that computes its inputs computes these columns. Cards written before
    /// it existed lack it, and read none.
    #[serde(default, skip_serializing_if = "FeatureSet::is_empty")]
    pub features: FeatureSet,
    /// How the calibration was chosen, with its cross-validated log losses.
    pub calibration: serde_json::Value,
    /// Every setting of the run (`churn train --config`'s keys).
    pub settings: serde_json::Value,
}

/// The courses a model's features were computed with, by course id: the
/// server computes `completion_rate` and the calendar features of raw-event
/// requests from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CourseCatalogue {
    /// `[id, lessons]`.
    pub courses: Vec<(String, u32)>,
    /// `[id, ms since epoch]`, for courses that have an end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course_ends: Vec<(String, i64)>,
    /// `[id, ms since epoch]`, for courses that have a start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course_starts: Vec<(String, i64)>,
    /// `[course id, due ms, event type]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course_deadlines: Vec<(String, i64, String)>,
}

impl CourseCatalogue {
    /// The catalogue of a dataset's courses and deadlines.
    pub fn of(dataset: &churn_core::Dataset) -> Self {
        let courses = &dataset.courses;
        let dated = |date: fn(&churn_core::Course) -> Option<i64>| {
            courses
                .iter()
                .filter_map(|c| date(c).map(|ms| (c.id.clone(), ms)))
                .collect()
        };
        CourseCatalogue {
            courses: courses.iter().map(|c| (c.id.clone(), c.lessons)).collect(),
            course_ends: dated(|c| c.ends_at),
            course_starts: dated(|c| c.starts_at),
            course_deadlines: dataset
                .deadlines
                .iter()
                .filter_map(|d| {
                    let course = courses.get(d.course as usize)?;
                    Some((
                        course.id.clone(),
                        d.due_at,
                        d.event_type.as_str().to_owned(),
                    ))
                })
                .collect(),
        }
    }
}

/// A model trained on a plain table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableTraining {
    pub features: String,
    pub features_sha256: String,
    /// The fixed test table, when one was given.
    pub test: Option<String>,
    pub test_sha256: Option<String>,
    pub label: String,
    pub time_column: Option<String>,
    pub split: serde_json::Value,
    pub calibration: serde_json::Value,
    pub settings: serde_json::Value,
}

/// A LightGBM model imported from its text format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedTraining {
    pub source: String,
    pub source_sha256: String,
    /// Its features are churn's (by name), so raw events can be scored.
    pub reads_churn_features: bool,
}

impl Training {
    /// The label horizon the model was trained for, as written (`30d`).
    pub fn horizon(&self) -> Option<&str> {
        match self {
            Training::ChurnData(t) => Some(&t.horizon),
            _ => None,
        }
    }

    /// What "churned" meant for the labels (`either` for a model that was not
    /// trained on churn's labels).
    pub fn label(&self) -> LabelDefinition {
        match self {
            Training::ChurnData(t) => t.label,
            _ => LabelDefinition::Either,
        }
    }

    /// The courses the features were computed with (none for a model not
    /// trained on churn's data).
    pub fn catalogue(&self) -> Option<&CourseCatalogue> {
        match self {
            Training::ChurnData(t) => Some(&t.catalogue),
            _ => None,
        }
    }

    /// The custom event types that count as activity for this model.
    pub fn activity_types(&self) -> &[String] {
        match self {
            Training::ChurnData(t) => &t.activity_types,
            _ => &[],
        }
    }

    /// The custom event types and learner attributes this model reads
    /// besides the registry (none for a model not trained on churn's data).
    pub fn feature_set(&self) -> &FeatureSet {
        match self {
            Training::ChurnData(t) => &t.features,
            _ => FeatureSet::none(),
        }
    }

    /// Records how the fit went: the calibration choice and the run's settings.
    pub fn set_fit(&mut self, calibration: serde_json::Value, settings: serde_json::Value) {
        match self {
            Training::ChurnData(t) => (t.calibration, t.settings) = (calibration, settings),
            Training::Table(t) => (t.calibration, t.settings) = (calibration, settings),
            Training::ImportedLightgbm(_) => {}
        }
    }
}

impl ModelCard {
    /// `name@version`, how logs and reports name the model.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// How long one phase of training took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// e.g. `prepare`, `fit`, `calibrate`, `explain`, `evaluate`.
    pub phase: String,
    pub seconds: f64,
}

/// What the trainer knows beyond the model itself.
#[derive(Debug, Clone)]
pub struct CardInput {
    pub training: Training,
    pub seed: u64,
    pub parameters: serde_json::Value,
    pub metrics: serde_json::Value,
    /// Milliseconds since the epoch, UTC: the version stamp and `created_at`.
    pub created_at_ms: i64,
    /// Training distributions for drift checks, written as `reference.json`.
    pub reference: Option<crate::drift::TrainingReference>,
    /// Wall time of each phase of the run, in order.
    pub phases: Vec<PhaseTime>,
}

/// A loaded artifact.
pub struct Artifact {
    pub card: ModelCard,
    pub model: PreparedModel,
    /// The version directory it was read from.
    pub dir: PathBuf,
    /// `reference.json`, when training wrote one (imported models have none).
    pub reference: Option<crate::drift::TrainingReference>,
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of bytes (sha2 0.11 digests are not `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `model.bin` for a model.
pub fn model_bytes(model: &ChurnModel) -> Result<Vec<u8>, ModelError> {
    postcard::to_allocvec(&Body {
        format_version: FORMAT_VERSION,
        model: model.clone(),
    })
    .map_err(|e| ModelError::Encode(e.to_string()))
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `20261125T153000Z` for a UTC time in ms.
pub fn version_stamp(ms: i64) -> String {
    let text = churn_core::format_timestamp(ms); // 2026-11-25T15:30:00Z or with .mmm
    let digits: String = text
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// Writes `model` as `<models_dir>/<name>/<version>/`, atomically. Returns the card.
pub fn save(
    models_dir: &Path,
    name: &str,
    model: &ChurnModel,
    input: CardInput,
) -> Result<(ModelCard, PathBuf), ModelError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        return Err(ModelError::Name(format!(
            "{name:?} is not a model name (letters, digits, '-', '_', '.'; not starting with '.')"
        )));
    }
    model.validate()?;
    let bytes = model_bytes(model)?;
    let sha256 = sha256_hex(&bytes);
    let version = format!("{}-{}", version_stamp(input.created_at_ms), &sha256[..6]);
    let card = ModelCard {
        format_version: FORMAT_VERSION,
        name: name.to_owned(),
        version: version.clone(),
        kind: model.kind().to_owned(),
        features: model.schema.features.clone(),
        calibration: model.calibration.name().to_owned(),
        contribution_scale: "log_odds".into(),
        training: input.training.clone(),
        seed: input.seed,
        parameters: input.parameters.clone(),
        metrics: input.metrics.clone(),
        created_at: churn_core::format_timestamp(input.created_at_ms),
        phases: input.phases.clone(),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        sha256,
    };
    let card_json =
        serde_json::to_string_pretty(&card).map_err(|e| ModelError::Encode(e.to_string()))?;
    let parent = models_dir.join(name);
    churn_core::create_dir_all(&parent).map_err(|e| io_error(&parent, e))?;
    let target = parent.join(&version);
    if target.exists() {
        return Err(ModelError::Exists(target));
    }
    let temp = parent.join(format!(".tmp-{version}-{}", std::process::id()));
    churn_core::create_dir_all(&temp).map_err(|e| io_error(&temp, e))?;
    let reference_json = match &input.reference {
        Some(r) => Some(serde_json::to_string(r).map_err(|e| ModelError::Encode(e.to_string()))?),
        None => None,
    };
    let mut files = vec![
        ("model.bin", &bytes[..]),
        ("model.json", card_json.as_bytes()),
    ];
    if let Some(json) = &reference_json {
        files.push(("reference.json", json.as_bytes()));
    }
    for (file, content) in files {
        let path = temp.join(file);
        std::fs::write(&path, content).map_err(|e| io_error(&path, e))?;
    }
    churn_core::publish_dir(&temp, &target).map_err(|e| io_error(&target, e))?;
    Ok((card, target))
}

/// Loads the artifact `reference` names (see [`resolve`]) and checks that it
/// reads churn's own features (the registry and its card's feature set), so
/// that a table model is refused before anything is scored.
pub fn load_feature_model(reference: &str, models_dir: &Path) -> Result<Artifact, ModelError> {
    let dir = resolve(reference, models_dir)?;
    let artifact = load(&dir)?;
    let expected = crate::InputSchema::churn_features_of(artifact.card.training.feature_set());
    let expected: Vec<_> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    artifact
        .model
        .schema()
        .require(&expected)
        .map_err(|e| ModelError::NotChurnFeatures {
            dir: dir.clone(),
            source: Box::new(e),
        })?;
    Ok(artifact)
}

/// Finds an artifact: a version directory path, or `name` / `name@version`
/// under `models_dir` (`name` alone: the highest version).
pub fn resolve(reference: &str, models_dir: &Path) -> Result<PathBuf, ModelError> {
    let as_path = Path::new(reference);
    if as_path.join("model.bin").is_file() || as_path.join("model.json").is_file() {
        return Ok(as_path.to_owned());
    }
    let (name, version) = match reference.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (reference, None),
    };
    let dir = models_dir.join(name);
    match version {
        Some(v) => {
            let path = dir.join(v);
            if path.is_dir() {
                Ok(path)
            } else {
                Err(ModelError::NotFound(format!(
                    "no version {v:?} of model {name:?} in {}",
                    models_dir.display()
                )))
            }
        }
        None => {
            let entries = std::fs::read_dir(&dir).map_err(|_| {
                ModelError::NotFound(format!(
                    "no model {name:?} in {} (and no artifact directory of that path)",
                    models_dir.display()
                ))
            })?;
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|v| !v.starts_with('.'))
                .max()
                .map(|v| dir.join(v))
                .ok_or_else(|| ModelError::NotFound(format!("model {name:?} has no versions")))
        }
    }
}

/// Loads and checks an artifact directory: card readable, format version,
/// checksum, decodable body, schema of the card = schema of the model, model
/// consistent. Each failure is its own clear error.
/// Reads a JSON card, refusing unreadable text by file (`what`: what it should be).
pub(crate) fn read_card<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Corrupt {
        path: path.to_owned(),
        reason: format!("not a {what}: {e}"),
    })
}

/// Refuses a format version other than `expected`, naming the file.
pub(crate) fn check_format(path: &Path, found: u32, expected: u32) -> Result<(), ModelError> {
    if found == expected {
        return Ok(());
    }
    Err(ModelError::FormatVersion {
        path: path.to_owned(),
        found,
        expected,
    })
}

/// Reads a postcard body whose SHA-256 the card recorded and decodes it.
pub(crate) fn read_body<T: serde::de::DeserializeOwned>(
    path: &Path,
    sha256: &str,
    what: &str,
) -> Result<T, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(ModelError::Checksum {
            path: path.to_owned(),
            expected: sha256.to_owned(),
            actual,
            bytes: bytes.len(),
        });
    }
    postcard::from_bytes(&bytes).map_err(|e| ModelError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot decode ({e}); truncated or not a churn {what}"),
    })
}

pub fn load(dir: &Path) -> Result<Artifact, ModelError> {
    let card_path = dir.join("model.json");
    let card: ModelCard = read_card(&card_path, "model card")?;
    check_format(&card_path, card.format_version, FORMAT_VERSION)?;
    let bin_path = dir.join("model.bin");
    let body: Body = read_body(&bin_path, &card.sha256, "model")?;
    check_format(&bin_path, body.format_version, FORMAT_VERSION)?;
    if body.model.schema.features != card.features {
        return Err(ModelError::SchemaMismatch(format!(
            "{}: the card's features differ from the model's",
            dir.display()
        )));
    }
    let model = PreparedModel::new(body.model)?;
    let reference_path = dir.join("reference.json");
    let reference = match std::fs::read_to_string(&reference_path) {
        Ok(text) => Some(
            serde_json::from_str(&text).map_err(|e| ModelError::Corrupt {
                path: reference_path.clone(),
                reason: format!("not a training reference: {e}"),
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&reference_path, e)),
    };
    Ok(Artifact {
        card,
        model,
        dir: dir.to_owned(),
        reference,
    })
}

/// The (name, kind) list of a card, for [`crate::InputSchema::require`]-style checks.
pub fn card_features(card: &ModelCard) -> Vec<(&str, Kind)> {
    card.features
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect()
}
