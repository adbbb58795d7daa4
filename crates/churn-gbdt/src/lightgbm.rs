//! Import of LightGBM's text model format (`model.txt`, LightGBM 4.x) for
//! binary objectives, so a team can serve and explain a model it already has.

use crate::GbdtError;
use crate::model::{FeatureKind, Model};
use crate::tree::{MissingType, Split, Tree};

fn error(line: usize, message: impl Into<String>) -> GbdtError {
    GbdtError::Import {
        line,
        message: message.into(),
    }
}

/// Parses a LightGBM text model. Refuses what it cannot reproduce exactly:
/// multiclass, linear trees, objectives other than binary.
pub fn from_lightgbm_text(text: &str) -> Result<Model, GbdtError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut header = std::collections::HashMap::new();
    let mut i = 0;
    while i < lines.len() && !lines[i].starts_with("Tree=") {
        if let Some((key, value)) = lines[i].split_once('=') {
            header.insert(key.trim(), (i + 1, value.trim()));
        }
        i += 1;
    }
    let get = |key: &str| {
        header
            .get(key)
            .copied()
            .ok_or_else(|| error(0, format!("header has no {key}")))
    };

    let (line, num_class) = get("num_class")?;
    if num_class != "1" {
        return Err(error(
            line,
            format!("num_class={num_class}: only binary models are supported"),
        ));
    }
    let (line, objective) = get("objective")?;
    let mut parts = objective.split_whitespace();
    if parts.next() != Some("binary") {
        return Err(error(
            line,
            format!("objective {objective:?}: only binary is supported"),
        ));
    }
    let mut sigmoid = 1.0;
    for part in parts {
        if let Some(value) = part.strip_prefix("sigmoid:") {
            sigmoid = value
                .parse()
                .map_err(|_| error(line, format!("bad sigmoid {value:?}")))?;
        }
    }
    let (line, max_feature_idx) = get("max_feature_idx")?;
    let num_features: usize = max_feature_idx
        .parse::<usize>()
        .map_err(|_| error(line, "bad max_feature_idx"))?
        + 1;
    let feature_names: Vec<String> = match header.get("feature_names") {
        Some((_, names)) => names.split_whitespace().map(str::to_owned).collect(),
        None => (0..num_features).map(|i| format!("Column_{i}")).collect(),
    };
    if feature_names.len() != num_features {
        return Err(error(
            0,
            format!(
                "{} feature names for {num_features} features",
                feature_names.len()
            ),
        ));
    }
    let mut feature_kinds = vec![FeatureKind::Numeric; num_features];
    // `feature_infos` lists a numeric feature as `[min:max]` (or `none` when
    // unused) and a categorical one as its category values `a:b:c`: this
    // marks categorical features that no split happens to use.
    if let Ok((_, infos)) = get("feature_infos") {
        for (kind, info) in feature_kinds.iter_mut().zip(infos.split_whitespace()) {
            if !info.starts_with('[') && info != "none" {
                *kind = FeatureKind::Categorical;
            }
        }
    }

    let mut trees = Vec::new();
    while i < lines.len() {
        let line = lines[i].trim();
        if line == "end of trees" {
            break;
        }
        if !line.starts_with("Tree=") {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut fields = std::collections::HashMap::new();
        i += 1;
        while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].starts_with("Tree=") {
            if let Some((key, value)) = lines[i].split_once('=') {
                fields.insert(key.trim(), (i + 1, value.trim()));
            }
            i += 1;
        }
        let tree = parse_tree(&fields, start, num_features, &mut feature_kinds)?;
        trees.push(tree);
    }
    if trees.is_empty() {
        return Err(error(lines.len(), "no trees"));
    }
    let model = Model {
        trees,
        feature_names,
        feature_kinds,
        sigmoid,
        best_iteration: None,
    };
    model.validate()?;
    Ok(model)
}

type Fields<'a> = std::collections::HashMap<&'a str, (usize, &'a str)>;

fn numbers<T: std::str::FromStr>(
    fields: &Fields,
    key: &str,
    start: usize,
    expected: usize,
) -> Result<Vec<T>, GbdtError> {
    let (line, text) = fields
        .get(key)
        .copied()
        .ok_or_else(|| error(start, format!("tree has no {key}")))?;
    let values: Vec<T> = text
        .split_whitespace()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| error(line, format!("bad {key} value {v:?}")))
        })
        .collect::<Result<_, _>>()?;
    if values.len() != expected {
        return Err(error(
            line,
            format!("{key} has {} values, expected {expected}", values.len()),
        ));
    }
    Ok(values)
}

fn parse_tree(
    fields: &Fields,
    start: usize,
    num_features: usize,
    kinds: &mut [FeatureKind],
) -> Result<Tree, GbdtError> {
    let num_leaves: usize = numbers::<usize>(fields, "num_leaves", start, 1)?[0];
    if let Some((line, linear)) = fields.get("is_linear")
        && *linear != "0"
    {
        return Err(error(*line, "linear trees are not supported"));
    }
    if num_leaves == 0 {
        return Err(error(start, "num_leaves=0"));
    }
    let leaf_value: Vec<f64> = numbers(fields, "leaf_value", start, num_leaves)?;
    if num_leaves == 1 {
        let count = numbers::<f64>(fields, "leaf_count", start, 1).unwrap_or_else(|_| vec![0.0]);
        return Ok(Tree::constant(leaf_value[0], count[0]));
    }
    let internal = num_leaves - 1;
    let split_feature: Vec<u32> = numbers(fields, "split_feature", start, internal)?;
    let split_gain: Vec<f64> = numbers(fields, "split_gain", start, internal)?;
    let threshold: Vec<f64> = numbers(fields, "threshold", start, internal)?;
    let decision_type: Vec<i32> = numbers(fields, "decision_type", start, internal)?;
    let left_child: Vec<i32> = numbers(fields, "left_child", start, internal)?;
    let right_child: Vec<i32> = numbers(fields, "right_child", start, internal)?;
    let leaf_count: Vec<f64> = numbers(fields, "leaf_count", start, num_leaves)?;
    let internal_count: Vec<f64> = numbers(fields, "internal_count", start, internal)?;
    let num_cat: usize = numbers::<usize>(fields, "num_cat", start, 1)
        .map(|v| v[0])
        .unwrap_or(0);
    let (cat_boundaries, cat_threshold): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        let boundaries: Vec<usize> = numbers(fields, "cat_boundaries", start, num_cat + 1)?;
        let total = boundaries.last().copied().unwrap_or(0);
        (boundaries, numbers(fields, "cat_threshold", start, total)?)
    } else {
        (Vec::new(), Vec::new())
    };

    let mut split = Vec::with_capacity(internal);
    for node in 0..internal {
        let dt = decision_type[node];
        let feature = split_feature[node] as usize;
        if feature >= num_features {
            return Err(error(
                start,
                format!("node {node} splits on feature {feature} of {num_features}"),
            ));
        }
        if dt & 1 == 1 {
            kinds[feature] = FeatureKind::Categorical;
            let index = threshold[node] as usize;
            let (from, to) = match (cat_boundaries.get(index), cat_boundaries.get(index + 1)) {
                (Some(&from), Some(&to)) if from <= to && to <= cat_threshold.len() => (from, to),
                _ => {
                    return Err(error(
                        start,
                        format!("node {node}: categorical threshold {index} out of range"),
                    ));
                }
            };
            split.push(Split::Categorical {
                bitset: cat_threshold[from..to].to_vec(),
            });
        } else {
            let missing = match (dt >> 2) & 3 {
                0 => MissingType::None,
                1 => MissingType::Zero,
                2 => MissingType::NaN,
                other => {
                    return Err(error(
                        start,
                        format!("node {node}: unknown missing type {other}"),
                    ));
                }
            };
            split.push(Split::Numeric {
                threshold: threshold[node],
                default_left: dt & 2 == 2,
                missing,
            });
        }
    }
    Ok(Tree {
        split_feature,
        split,
        split_gain,
        left_child,
        right_child,
        internal_count,
        leaf_value,
        leaf_count,
    })
}
