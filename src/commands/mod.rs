//! One module per subcommand; `run` dispatches. A command module may call
//! another (quickstart runs the others) but never this one.

mod ab;
mod evaluate;
mod features;
mod import;
mod import_lightgbm;
mod monitor;
mod quickstart;
mod scoring;
mod serve;
mod simulate;
mod store;
mod train;
mod tune;
mod validate;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(threads) = cli.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot set up the thread pool")?;
    }
    let ui = Ui {
        quiet: cli.quiet,
        summaries_on_stderr: matches!(cli.command, Command::Predict(_) | Command::Explain(_)),
    };
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Quickstart(args) => quickstart::quickstart(&ui, &args),
        Command::Simulate(args) => done(simulate::simulate(&ui, &args)),
        Command::Validate(args) => validate::validate(&ui, &args),
        Command::Features(args) => features::features(&ui, &args),
        Command::Train(args) => done(train::train(&ui, &args).map(|_| ())),
        Command::Tune(args) => done(tune::tune(&ui, &args)),
        Command::Evaluate(args) => done(evaluate::evaluate(&ui, &args)),
        Command::Predict(args) => done(scoring::predict(&ui, &args).map(|_| ())),
        Command::Serve(args) => done(serve::serve(&args)),
        Command::Ab(args) => done(ab::ab(&ui, &args)),
        Command::Monitor(args) => monitor::monitor(&ui, &args),
        Command::Import(args) => import::import(&ui, &args),
        Command::ImportLightgbm(args) => done(import_lightgbm::import_lightgbm(&args)),
        Command::Explain(args) => done(scoring::explain(&ui, &args)),
        Command::Store(crate::cli::StoreCommand::Load(args)) => done(store::load(&ui, &args)),
        Command::Store(crate::cli::StoreCommand::Compact(args)) => done(store::compact(&args)),
        Command::Store(crate::cli::StoreCommand::Purge(args)) => done(store::purge(&args)),
    }
}
