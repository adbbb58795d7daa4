//! `churn train`'s settings: defaults, then `--config train.toml`, then the
//! flags given, then each `--set key=value`, merged as one TOML table and
//! read into [`TrainSettings`] once (unknown keys are refused by name).
//!
//! The flags are shortcuts for keys of the file, so everything a flag can
//! say, the file can say, and the model card records the merged result.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use churn_train::overlay;
pub use churn_train::settings::TrainSettings;

use crate::cli::{ModelKind, TrainArgs};

fn path_value(path: &Path) -> toml::Value {
    toml::Value::String(path.display().to_string())
}

/// The merged settings of a `churn train` invocation.
pub fn resolve(args: &TrainArgs) -> Result<TrainSettings> {
    let mut table =
        toml::Table::try_from(TrainSettings::default()).context("internal: default settings")?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --config {}", path.display()))?;
        let file: toml::Table =
            toml::from_str(&text).with_context(|| format!("--config {}", path.display()))?;
        overlay::merge(&mut table, file);
    }
    let mut flags: Vec<(&str, toml::Value)> = Vec::new();
    let mut flag = |key: &'static str, value: Option<toml::Value>| {
        if let Some(value) = value {
            flags.push((key, value));
        }
    };
    let string = |s: &Option<String>| s.as_ref().map(|s| toml::Value::String(s.clone()));
    let path = |p: &Option<PathBuf>| p.as_deref().map(path_value);
    flag("data", path(&args.data));
    flag("features", path(&args.features));
    flag("test", path(&args.test));
    flag("label", string(&args.label));
    flag("time_column", string(&args.time_column));
    flag(
        "kind",
        args.kind.map(|k| {
            toml::Value::String(
                match k {
                    ModelKind::Gbdt => "gbdt",
                    ModelKind::Logistic => "logistic",
                    ModelKind::Both => "both",
                }
                .into(),
            )
        }),
    );
    flag("name", string(&args.name));
    flag("out", path(&args.out));
    flag(
        "seed",
        args.seed
            .map(|s| i64::try_from(s).map_or(toml::Value::Float(s as f64), toml::Value::Integer)),
    );
    flag("work", path(&args.work));
    flag("now", string(&args.now));
    flag("logistic.c", args.logistic_c.map(toml::Value::Float));
    let count =
        |n: Option<usize>| n.map(|k| toml::Value::Integer(i64::try_from(k).unwrap_or(i64::MAX)));
    flag("points", path(&args.points));
    flag("split.test_times", count(args.test_times));
    flag("split.valid_times", count(args.valid_times));
    flag("backtest", count(args.backtest));
    flag(
        "refit",
        args.no_refit.then_some(toml::Value::Boolean(false)),
    );
    flag(
        "custom_types",
        args.custom_types
            .map(|k| toml::Value::Integer(i64::try_from(k).unwrap_or(i64::MAX))),
    );
    flag("snapshots.from", string(&args.from));
    flag("snapshots.to", string(&args.to));
    flag("snapshots.every", string(&args.every));
    flag("snapshots.horizon", string(&args.horizon));
    flag("snapshots.data_end", string(&args.data_end));
    for (key, value) in flags {
        overlay::set(&mut table, key, value).map_err(anyhow::Error::msg)?;
    }
    for assignment in &args.set {
        let Some((key, value)) = assignment.split_once('=') else {
            bail!("--set {assignment:?}: expected key=value, e.g. --set gbdt.learning_rate=0.1");
        };
        overlay::set(&mut table, key.trim(), overlay::parse_value(value.trim()))
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--set {assignment:?}"))?;
    }
    let settings: TrainSettings = toml::Value::Table(table)
        .try_into()
        .context("training settings (defaults, --config, flags and --set merged)")?;
    Ok(settings.checked()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str], config: Option<&str>) -> Result<TrainSettings> {
        let dir = tempfile::tempdir()?;
        let mut argv = vec!["churn", "train"];
        let path = dir.path().join("train.toml");
        let path_text = path.display().to_string();
        if let Some(text) = config {
            std::fs::write(&path, text)?;
            argv.extend(["--config", path_text.as_str()]);
        }
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv)?;
        let crate::cli::Command::Train(train) = cli.command else {
            bail!("not train");
        };
        resolve(&train)
    }

    #[test]
    fn file_then_flags_then_set_each_override_the_one_before() {
        let config = "data = \"from-file\"\nseed = 7\nname = \"file\"\n[gbdt]\nlearning_rate = 0.2\nnum_leaves = 15\n[snapshots]\nevery = \"7d\"\n";
        let s = settings(
            &[
                "--name",
                "flag",
                "--set",
                "gbdt.num_leaves=63",
                "--set",
                "snapshots.horizon=21d",
            ],
            Some(config),
        )
        .unwrap();
        assert_eq!(s.data.as_deref(), Some(Path::new("from-file")));
        assert_eq!(s.name, "flag");
        assert_eq!(s.seed, 7);
        assert_eq!(s.gbdt.seed, 7, "the one seed");
        assert_eq!(s.gbdt.learning_rate, 0.2);
        assert_eq!(s.gbdt.num_leaves, 63);
        assert_eq!(s.snapshots.every, "7d");
        assert_eq!(s.snapshots.horizon, "21d");
        // Untouched keys keep their defaults.
        assert_eq!(s.gbdt.min_data_in_leaf, 50);
        assert_eq!(s.logistic.c, 1.0);
    }

    #[test]
    fn the_flags_alone_give_the_defaults() {
        let s = settings(&["--data", "data"], None).unwrap();
        let d = TrainSettings::default();
        assert_eq!(s.gbdt, d.gbdt);
        assert_eq!(
            (s.kind, s.seed, s.name.as_str()),
            (churn_train::settings::ModelKind::Both, 42, "churn")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = |args: &[&str], config: Option<&str>| {
            format!("{:#}", settings(args, config).unwrap_err())
        };
        assert!(
            err(&["--data", "d", "--set", "gbdt.learning_rat=0.1"], None).contains("learning_rat")
        );
        assert!(
            err(&["--data", "d", "--set", "gbdt.num_leaves=many"], None).contains("num_leaves")
        );
        assert!(err(&["--data", "d"], Some("sed = 1\n")).contains("sed"));
        assert!(err(&["--data", "d", "--set", "novalue"], None).contains("key=value"));
        assert!(err(&[], None).contains("--data DIR"));
        assert!(err(&["--data", "d", "--label", "y"], None).contains("go with --features"));
        assert!(err(&["--data", "d", "--logistic-c", "0"], None).contains("logistic.c"));
    }
}
