//! Command-line arguments.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  churn quickstart                                  validate the committed sample and simulate a fresh one
  churn simulate --learners 5000 --days 180 --seed 42 --out data/
  churn validate --data data/ --out churn-out/validate --strict
  churn validate --data exports/ --now 2026-07-01T00:00:00Z
  churn features --data data/ --out churn-out/features/table.parquet --every 14d --horizon 30d";

/// Predict which learners are about to leave, say why, and measure what keeps them.
#[derive(Debug, Parser)]
#[command(name = "churn", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the main job on the committed sample (see README).
    Quickstart(QuickstartArgs),
    /// Generate a synthetic platform with known churn drivers and an experiment.
    #[command(
        after_help = "Example:\n  churn simulate --learners 100000 --days 180 --seed 7 --out sim/ --assignment targeted"
    )]
    Simulate(SimulateArgs),
    /// Check a data directory against the data contract; write rejected rows.
    #[command(
        after_help = "Example:\n  churn validate --data data/ --out churn-out/validate --strict"
    )]
    Validate(ValidateArgs),
    /// Compute the training table: features and labels at rolling as-of times.
    #[command(
        after_help = "Example:\n  churn features --data data/ --out churn-out/features/table.parquet \\\n      --from 2026-02-01 --to 2026-06-01 --every 14d --horizon 30d"
    )]
    Features(FeaturesArgs),
    /// Train churn models (gbdt, logistic or both) out of time, calibrated, as versioned artifacts.
    #[command(
        after_help = "Example:\n  churn train --data data/ --kind both --name churn --out models/ --seed 42"
    )]
    Train(TrainArgs),
    /// Search the main parameters of each family by the backtest (successive halving); writes the best as a settings file for train --config.
    #[command(
        after_help = "Example:\n  churn tune --data data/ --kind gbdt --trials 27 --tuned churn-out/tune/tuned.toml\n  churn train --data data/ --config churn-out/tune/tuned.toml"
    )]
    Tune(TuneArgs),
    /// Score a model on labelled examples of a data directory (every labelled as-of time).
    #[command(
        after_help = "Example:\n  churn evaluate --model churn-gbdt --data data/ --from 2026-05-01"
    )]
    Evaluate(EvaluateArgs),
    /// Score the active learners at one as-of time: probability, risk band, top factors, suggested action.
    #[command(
        after_help = "Example:\n  churn predict --model churn-gbdt --data data/ --as-of 2026-06-01 --out predictions.csv"
    )]
    Predict(PredictArgs),
    /// Explain one learner's score: every feature's log-odds contribution and the suggested action.
    #[command(
        after_help = "Example:\n  churn explain --model churn-gbdt --data data/ --learner L0042 --as-of 2026-06-01"
    )]
    Explain(ExplainArgs),
    /// Map a platform's own tables (CSV/TSV, JSON lines, Parquet; compressed; globs) to a contract data directory.
    #[command(
        after_help = "Example:\n  churn import --mapping examples/purchases/mapping.toml --out imported/\n\nThe mapping is TOML: see README \"Bring your own data\". The output is validated as `churn validate` would."
    )]
    Import(DataImportArgs),
    /// Turn a LightGBM model.txt (binary objective) into a churn artifact: same predictions, exact TreeSHAP.
    #[command(
        name = "import-lightgbm",
        after_help = "Example:\n  churn import-lightgbm model.txt --name churn-lgbm --out models/"
    )]
    ImportLightgbm(ImportArgs),
    /// Serve predictions over HTTP: probability, reasons and suggested action, with hot reload.
    #[command(
        after_help = "Examples:\n  churn serve --models models/ --addr 127.0.0.1:8080\n  CHURN_SERVE_ADMIN_TOKEN=... churn serve --champion churn-gbdt --challenger churn-logistic --challenger-share 0.1\n\nSettings: defaults < --config FILE < CHURN_SERVE_* environment < flags."
    )]
    Serve(ServeArgs),
    /// Read out a retention experiment: churn by arm, effects against control, sample-ratio check.
    #[command(
        after_help = "Example:\n  churn ab --data data/ --out churn-out/ab\n  churn ab --data sim/ --experiment retention-2026 --allocation control=0.25 --allocation recall_coupon=0.25 ..."
    )]
    Ab(AbArgs),
    /// Is the live model still right: realised accuracy, calibration and prediction drift from the server's log.
    #[command(
        after_help = "Example:\n  churn monitor --log churn-out/predictions.jsonl --data data/ --every 7d --out churn-out/monitor --fail-on 'auc<0.7,psi>0.25'"
    )]
    Monitor(MonitorArgs),
    /// The learner store behind learner-keyed serving.
    #[command(subcommand)]
    Store(StoreCommand),
}

/// `churn store …`.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Load a data directory's learners and events into a store (idempotent: loading again stores nothing twice).
    #[command(
        after_help = "Example:\n  churn store load --data data/ --store churn-out/store.db\n  churn serve --store churn-out/store.db"
    )]
    Load(StoreLoadArgs),
    /// Retention: replace every learner's events before a cutoff with summary rows that give the same features at every as-of time 30 days or more after it (the store then refuses older events and earlier as-of times).
    #[command(
        after_help = "Example:\n  churn store compact --store churn-out/store.db --before 2026-03-01T00:00:00Z\n  churn store compact --store churn-out/store.db --keep-days 365"
    )]
    Compact(StoreCompactArgs),
    /// Remove from the store's files what erasures and compactions left there (PostgreSQL: VACUUM FULL of the store's tables, an exclusive lock while they are rewritten, and a checkpoint).
    #[command(after_help = "Example:\n  churn store purge --store postgres://churn@db/churn")]
    Purge(StorePurgeArgs),
}

#[derive(Debug, Args)]
pub struct StorePurgeArgs {
    /// The store: a file path or a postgres:// URL.
    #[arg(long)]
    pub store: String,
}

#[derive(Debug, Args)]
pub struct StoreCompactArgs {
    /// The store: a file path or a postgres:// URL.
    #[arg(long)]
    pub store: String,
    /// The cutoff (RFC 3339): events before it are summarised.
    #[arg(
        long,
        conflicts_with = "keep_days",
        required_unless_present = "keep_days"
    )]
    pub before: Option<String>,
    /// The cutoff as days before now: raw events this recent are kept.
    #[arg(long)]
    pub keep_days: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StoreLoadArgs {
    /// Data directory with learners, courses and events.
    #[arg(long)]
    pub data: PathBuf,
    /// The store: a file path (the embedded store, created when missing).
    #[arg(long)]
    pub store: String,
    /// Events per commit.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Where rejects/<table>.csv and validation.json of the data are written.
    #[arg(long, default_value = "churn-out/store")]
    pub work: PathBuf,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// The sample data directory.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Where results go.
    #[arg(long, default_value = "churn-out/quickstart")]
    pub out: PathBuf,
    /// Stop before serving the trained model.
    #[arg(long)]
    pub no_serve: bool,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Parquet,
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Assignment {
    /// Every arm with probability 1/4.
    Uniform,
    /// Riskier learners treated more often, propensities logged.
    Targeted,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of learners.
    #[arg(long, default_value_t = 5_000)]
    pub learners: usize,
    /// Days of history.
    #[arg(long, default_value_t = 180)]
    pub days: u32,
    /// The seed every random step derives from.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// File format of the tables.
    #[arg(long, value_enum, default_value_t = FileFormat::Parquet)]
    pub format: FileFormat,
    /// First day of the data (a date, UTC).
    #[arg(long, default_value = "2026-01-01")]
    pub start: String,
    /// Number of courses.
    #[arg(long, default_value_t = 40)]
    pub courses: usize,
    /// Day of the experiment, counted from --start (default: 45 days before the end).
    #[arg(long)]
    pub experiment_day: Option<u32>,
    /// How learners are assigned to arms.
    #[arg(long, value_enum, default_value_t = Assignment::Uniform)]
    pub assignment: Assignment,
    /// From this day on, behaviour changes (a new cohort from other channels,
    /// worse live-class latency): a scenario for `churn monitor`.
    #[arg(long)]
    pub drift_day: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Data directory with learners, courses, events [, assignments] as .csv or .parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// Where rejects/<table>.csv and validation.json are written.
    #[arg(long, default_value = "churn-out/validate")]
    pub out: PathBuf,
    /// Fail (exit 1) if any row is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct DataImportArgs {
    /// The mapping file (TOML); source paths in it are relative to it.
    #[arg(long)]
    pub mapping: PathBuf,
    /// The contract data directory to write (Parquet tables, contract.toml,
    /// rejects/, import.json; the validation of the result in validation/).
    #[arg(long)]
    pub out: PathBuf,
    /// Fail (exit 1) if any source row or contract row is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Do not validate the result (every command validates what it reads
    /// anyway); for very large imports validated later, and benchmarks.
    #[arg(long, conflicts_with = "strict")]
    pub no_validate: bool,
    /// Reference time for validating the result (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Data directory with learners, courses, events as .csv or .parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// The table to write (.parquet or .csv); rejects go to rejects/ beside it.
    #[arg(long, default_value = "churn-out/features/table.parquet")]
    pub out: PathBuf,
    #[command(flatten)]
    pub snapshots: SnapshotArgs,
    /// Fail (exit 1) if any input row is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
    #[command(flatten)]
    pub out_of_core: OutOfCoreArgs,
    /// Custom event types given features: the K most frequent.
    #[arg(long, value_name = "K", default_value_t = churn_features::DEFAULT_CUSTOM_TYPES)]
    pub custom_types: usize,
    /// Prediction points instead of rolling as-of times: a CSV or Parquet
    /// file of learner_id, as_of pairs (rejects go beside the table).
    #[arg(long, value_name = "FILE")]
    pub points: Option<PathBuf>,
}

/// `churn tune`: train's settings (data, snapshots, split, backtest, the
/// starting parameters), the number of candidates and where the winner goes.
#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Candidates drawn per family (the first is the settings given).
    #[arg(long, default_value_t = 27, value_name = "N")]
    pub trials: usize,
    /// The winning settings, a TOML that `churn train --config` reads;
    /// trials.json and trials.html go beside it.
    #[arg(long, default_value = "churn-out/tune/tuned.toml", value_name = "FILE")]
    pub tuned: PathBuf,
}

/// Event tables larger than memory: read once, spilled by learner, computed
/// a partition of learners at a time.
#[derive(Debug, Clone, Args)]
pub struct OutOfCoreArgs {
    /// Keep the whole run within about this much memory (e.g. 2GiB): the
    /// events are spilled by learner and computed in as few partitions as fit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "partitions")]
    pub memory: Option<u64>,
    /// Spill and compute in exactly N partitions of learners, instead of
    /// the number --memory picks; 1 computes everything in memory.
    #[arg(long, default_value = "1", value_name = "N")]
    pub partitions: NonZeroUsize,
    /// Where the spilled events go (a temporary directory, removed at the
    /// end); default: beside the output.
    #[arg(long, value_name = "DIR")]
    pub spill: Option<PathBuf>,
}

impl Default for OutOfCoreArgs {
    fn default() -> Self {
        OutOfCoreArgs {
            memory: None,
            partitions: NonZeroUsize::MIN,
            spill: None,
        }
    }
}

impl OutOfCoreArgs {
    /// The split asked for, or `None` to compute in memory; the command
    /// keeps `kept_per_learner` bytes per learner across partitions.
    pub fn split(&self, kept_per_learner: u64) -> Option<churn_data::Split> {
        match (self.memory, self.partitions.get()) {
            (Some(bytes), _) => Some(churn_data::Split::Memory {
                bytes,
                kept_per_learner,
            }),
            (None, 1) => None,
            (None, _) => Some(churn_data::Split::Partitions(self.partitions)),
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    byte_unit::Byte::parse_str(text, true)
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size like 2GiB or 512MB: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    Gbdt,
    Logistic,
    /// Both, as `<name>-gbdt` and `<name>-logistic`.
    Both,
}

/// `churn train`. Every flag is a shortcut for a key of the `--config` file
/// (shown in brackets); unset flags keep the file's value or the default.
#[derive(Debug, Default, Args)]
pub struct TrainArgs {
    /// Settings file (TOML) with any of the keys below; flags and --set override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. --set gbdt.learning_rate=0.1 --set logistic.c=0.5 (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Data directory with learners, courses, events as .csv or .parquet [data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Tabular mode: a .parquet or .csv table of numeric and categorical columns [features].
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Tabular mode: the test table; the card's test metrics are on it [test].
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Tabular mode: the label column, 0/1 or true/false [label].
    #[arg(long)]
    pub label: Option<String>,
    /// Tabular mode: split out of time by this column (default: stratified random split with the seed) [time_column].
    #[arg(long)]
    pub time_column: Option<String>,
    /// Which model family to fit (default both) [kind].
    #[arg(long, value_enum)]
    pub kind: Option<ModelKind>,
    /// Model name; with kind both: <name>-gbdt and <name>-logistic (default churn) [name].
    #[arg(long)]
    pub name: Option<String>,
    /// Models directory: artifacts go to <out>/<name>/<version>/ (default models) [out].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The one seed of every random step (default 42) [seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Inverse L2 strength of the logistic model, scikit-learn's C (default 1) [logistic.c].
    #[arg(long)]
    pub logistic_c: Option<f64>,
    /// Custom event types given features: the K most frequent (default 16) [custom_types].
    #[arg(long, value_name = "K")]
    pub custom_types: Option<usize>,
    /// Train at prediction points instead of rolling as-of times: a CSV or
    /// Parquet file of learner_id, as_of pairs [points].
    #[arg(long, value_name = "FILE")]
    pub points: Option<PathBuf>,
    /// The test period: the latest N labelled as-of times (default 1) [split.test_times].
    #[arg(long, value_name = "N")]
    pub test_times: Option<usize>,
    /// The validation part: the latest N as-of times a horizon before the test period (default 1) [split.valid_times].
    #[arg(long, value_name = "N")]
    pub valid_times: Option<usize>,
    /// Backtest folds: each of the latest K test periods in turn, with
    /// metrics by fold and a paired comparison of the models (default 3) [backtest].
    #[arg(long, value_name = "K")]
    pub backtest: Option<usize>,
    /// Ship the model fitted on the newest fold's training rows, as before
    /// issue 21, instead of one refitted on every labelled example [refit = false].
    #[arg(long)]
    pub no_refit: bool,
    /// First as-of time (default: the earliest with a horizon of history behind it) [snapshots.from].
    #[arg(long)]
    pub from: Option<String>,
    /// Last as-of time (default: the end of the data, at 00:00 UTC) [snapshots.to].
    #[arg(long)]
    pub to: Option<String>,
    /// Spacing of the as-of times (default 14d) [snapshots.every].
    #[arg(long)]
    pub every: Option<String>,
    /// Label horizon (default 30d) [snapshots.horizon].
    #[arg(long)]
    pub horizon: Option<String>,
    /// Last time the data covers (default: the latest event) [snapshots.data_end].
    #[arg(long)]
    pub data_end: Option<String>,
    /// Where validation.json and rejects/ go (default churn-out/train) [work].
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now) [now].
    #[arg(long)]
    pub now: Option<String>,
    /// Events larger than memory: the training table is computed a
    /// partition of learners at a time (the same table, the same model).
    #[command(flatten)]
    pub out_of_core: OutOfCoreArgs,
}

/// The as-of times of a training table (shared by `features`, `evaluate` and,
/// as the `[snapshots]` settings, `train`).
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// First as-of time (default: the earliest with a horizon of history behind it).
    #[arg(long)]
    pub from: Option<String>,
    /// Last as-of time (default: the end of the data, at 00:00 UTC).
    #[arg(long)]
    pub to: Option<String>,
    /// Spacing of the as-of times.
    #[arg(long, default_value = "14d")]
    pub every: String,
    /// Label horizon: churned = no activity (or a cancellation) within it.
    #[arg(long, default_value = "30d")]
    pub horizon: String,
    /// Last time the data covers; later horizons are unlabelled (default: the latest event).
    #[arg(long)]
    pub data_end: Option<String>,
    /// What "churned" means: inactivity, cancellation or either (default: the
    /// data's contract.toml, else either).
    #[arg(long)]
    pub label: Option<String>,
}

impl Default for SnapshotArgs {
    /// The flags' defaults.
    fn default() -> Self {
        SnapshotArgs::from(churn_train::settings::Snapshots::default())
    }
}

impl From<churn_train::settings::Snapshots> for SnapshotArgs {
    fn from(s: churn_train::settings::Snapshots) -> Self {
        let churn_train::settings::Snapshots {
            from,
            to,
            every,
            horizon,
            data_end,
            label,
        } = s;
        SnapshotArgs {
            from,
            to,
            every,
            horizon,
            data_end,
            label,
        }
    }
}

impl SnapshotArgs {
    /// The same values as `[snapshots]` settings.
    pub fn settings(&self) -> churn_train::settings::Snapshots {
        let SnapshotArgs {
            from,
            to,
            every,
            horizon,
            data_end,
            label,
        } = self.clone();
        churn_train::settings::Snapshots {
            from,
            to,
            every,
            horizon,
            data_end,
            label,
        }
    }
}

/// Which model artifact to use.
#[derive(Debug, Clone, Args)]
pub struct ModelSource {
    /// An artifact directory, or NAME / NAME@VERSION under --models.
    #[arg(long)]
    pub model: String,
    /// Models directory for NAME references.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Data directory with learners, courses, events as .csv or .parquet.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub snapshots: SnapshotArgs,
    /// Where validation.json and rejects/ go.
    #[arg(long, default_value = "churn-out/evaluate")]
    pub work: PathBuf,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

/// A model, the playbook and a data directory at one as-of time.
#[derive(Debug, Args)]
pub struct ScoringArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Data directory with learners, courses, events as .csv or .parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// The as-of time (RFC 3339 or a date; default: the latest event). Events after it are not read.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Playbook with risk bands and interventions (default: the committed playbook.toml).
    #[arg(long)]
    pub playbook: Option<PathBuf>,
    /// Suggest actions by a policy exported with `churn ab --export-policy`
    /// instead of the playbook (the playbook still gives the risk bands).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Learners without activity for this long are gone, not scored (default: the model's label horizon).
    #[arg(long)]
    pub horizon: Option<String>,
    /// Where validation.json and rejects/ go.
    #[arg(long, default_value = "churn-out/score")]
    pub work: PathBuf,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// The predictions CSV.
    #[arg(long, default_value = "predictions.csv")]
    pub out: PathBuf,
    /// Score at prediction points instead of one as-of time: a CSV or
    /// Parquet file of learner_id, as_of pairs (rejects go to --work).
    #[arg(long, value_name = "FILE", conflicts_with = "as_of")]
    pub points: Option<PathBuf>,
    /// Top factors per learner.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Events larger than memory: scored a partition of learners at a time
    /// (the same file).
    #[command(flatten)]
    pub out_of_core: OutOfCoreArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// The learner's id.
    #[arg(long)]
    pub learner: String,
    /// Features listed (largest |contribution| first; the rest are summed).
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Print JSON (the shape of a `/v1/predict` prediction) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// LightGBM text model (`booster.save_model("model.txt")`).
    pub model_txt: PathBuf,
    /// Artifact name.
    #[arg(long)]
    pub name: String,
    /// Models directory.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Settings file (TOML; any key of the server's settings, e.g. max_batch, admin_token).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Models directory.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Champion model: NAME (newest version) or NAME@VERSION (default churn-gbdt).
    #[arg(long)]
    pub champion: Option<String>,
    /// Challenger model, served to a sticky share of learners.
    #[arg(long)]
    pub challenger: Option<String>,
    /// Share of learners sent to the challenger (default 0.1).
    #[arg(long)]
    pub challenger_share: Option<f64>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// Playbook (default: the committed playbook.toml).
    #[arg(long)]
    pub playbook: Option<PathBuf>,
    /// Suggest actions by a policy exported with `churn ab --export-policy`
    /// (a directory) instead of the playbook.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Log the served feature values of a sampled share of learners (JSON
    /// lines, size-rotated) for `churn monitor --features`.
    #[arg(long)]
    pub feature_log: Option<PathBuf>,
    /// Share of learners whose features are logged (default 0.1).
    #[arg(long)]
    pub feature_log_share: Option<f64>,
    /// Exploration share for the suggested action (default 0).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Course catalogue (courses.csv) for raw-event instances.
    #[arg(long)]
    pub courses: Option<PathBuf>,
    /// Learner store (a file path): post events, ask for a learner by id
    /// (writes need CHURN_SERVE_INGEST_TOKEN or ingest_token).
    #[arg(long)]
    pub store: Option<String>,
    /// Prediction log, JSON lines, size-rotated.
    #[arg(long)]
    pub prediction_log: Option<PathBuf>,
    /// Poll the models directory for new versions every N seconds (0 = off).
    #[arg(long)]
    pub watch_seconds: Option<u64>,
    /// Largest batch per request.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Requests handled at once; beyond, 503 + Retry-After.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AbArgs {
    #[command(subcommand)]
    pub command: Option<AbCommand>,
    /// Data directory with learners, courses, events and assignments.
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
    /// Experiment id (needed when the assignments hold several).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Outcome window after assignment: churned = no activity (or a cancellation) within it.
    /// An assignments `churned` column, when present, is the outcome instead.
    #[arg(long, default_value = "30d")]
    pub horizon: String,
    /// What "churned" means: inactivity, cancellation or either (default: the
    /// data's contract.toml, else either).
    #[arg(long)]
    pub label: Option<String>,
    /// The control arm's name.
    #[arg(long, default_value = "control")]
    pub control: String,
    /// Planned share of an arm, for the sample-ratio check (repeat per arm; default:
    /// the logged propensities when constant per arm, else equal shares).
    #[arg(long, value_name = "ARM=SHARE")]
    pub allocation: Vec<String>,
    /// A churn model (artifact directory, or NAME / NAME@VERSION under --models) whose
    /// risk at assignment splits the effects by decile and ranks the top-k% policies;
    /// it also lets the playbook compete as a policy. Default: the logged risk_score.
    #[arg(long)]
    pub model: Option<String>,
    /// Models directory for --model NAME.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// What a retained learner is worth, in the unit of the costs.
    #[arg(long, default_value_t = 100.0, allow_negative_numbers = true)]
    pub learner_value: f64,
    /// Cost of one treatment with an arm (repeat per arm; default: the assignments'
    /// cost column, averaged per arm, else 0).
    #[arg(long, value_name = "ARM=COST")]
    pub cost: Vec<String>,
    /// CUPED: adjust each comparison by this numeric feature at assignment (a
    /// pre-period covariate such as active_days_30d).
    #[arg(long, value_name = "FEATURE")]
    pub cuped: Option<String>,
    /// Skip the uplift models (and the policies that need them).
    #[arg(long)]
    pub no_uplift: bool,
    /// Read the experiment from the server's prediction log (JSON lines; repeat for
    /// rotated files) instead of the assignments table: the policy is the
    /// experiment, the suggested action the arm, the logged propensity its probability.
    #[arg(long, value_name = "FILE")]
    pub prediction_log: Vec<PathBuf>,
    /// Write the recommended policy here (a new directory) for `churn serve --policy`.
    #[arg(long, value_name = "DIR")]
    pub export_policy: Option<PathBuf>,
    /// Bootstrap resamples for the policy values.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the cross-fitting folds, the uplift models and the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where ab.json, ab.html, validation.json and rejects/ go.
    #[arg(long, default_value = "churn-out/ab")]
    pub out: PathBuf,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AbCommand {
    /// Learners needed per arm to detect a churn reduction.
    #[command(after_help = "Example:\n  churn ab plan --baseline-rate 0.25 --mde 0.02 --arms 3")]
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Control churn rate expected over the horizon.
    #[arg(long)]
    pub baseline_rate: f64,
    /// Smallest absolute churn reduction worth detecting (0.02 = 2 points).
    #[arg(long)]
    pub mde: f64,
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Two-sided significance level, split over the treated arms (Bonferroni).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Treated arms, each compared with control.
    #[arg(long, default_value_t = 1)]
    pub arms: usize,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The server's prediction log (JSON lines; repeat for rotated files).
    #[arg(long, required = true, value_name = "FILE")]
    pub log: Vec<PathBuf>,
    /// Data directory whose events reveal the outcomes.
    #[arg(long)]
    pub data: PathBuf,
    /// Only this model (NAME or NAME@VERSION); default: every model in the log.
    #[arg(long)]
    pub model: Option<String>,
    /// The server's feature log (`churn serve --feature-log`; repeat for rotated
    /// files): input drift per feature against each model's training reference.
    #[arg(long, value_name = "FILE")]
    pub features: Vec<PathBuf>,
    /// Where the models in the log are (their reference.json is the baseline of drift).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Period length.
    #[arg(long, default_value = "7d")]
    pub every: String,
    /// Label horizon: churned = no activity (or a cancellation) within it after the prediction.
    #[arg(long, default_value = "30d")]
    pub horizon: String,
    /// What "churned" means: inactivity, cancellation or either (default: the
    /// data's contract.toml, else either).
    #[arg(long)]
    pub label: Option<String>,
    /// Exit with status 3 when a model's latest period crosses one of these
    /// (comma separated; metrics auc, ap, brier, ece, psi of the predictions,
    /// feature_psi = the largest feature PSI), e.g. `auc<0.7,psi>0.25`.
    #[arg(long)]
    pub fail_on: Option<String>,
    /// Features the `feature_psi` gate ignores (comma separated), e.g. age-like
    /// ones such as tenure_days that drift as a population matures; still reported.
    #[arg(long, value_delimiter = ',', value_name = "FEATURE,...")]
    pub gate_ignores: Vec<String>,
    /// Seed of the AUC bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where monitor.json, monitor.html, validation.json and rejects/ go.
    #[arg(long, default_value = "churn-out/monitor")]
    pub out: PathBuf,
    /// Reference time: later timestamps are rejected (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}
