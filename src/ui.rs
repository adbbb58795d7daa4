//! The terminal: progress bars and spinners on stderr (hidden when stderr is
//! not a terminal or with `--quiet`), and `say!`, which prints a line to
//! stdout and returns the error when the reader has gone away, so a command
//! piped into `head` stops quietly instead of panicking.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Prints a line to stdout like `println!`, as an `std::io::Result<()>`.
macro_rules! say {
    () => {
        std::io::Write::write_all(&mut std::io::stdout().lock(), b"\n")
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout().lock(), format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

/// Prints `text` (whole lines, already ending in a newline) to stdout.
pub fn print_text(text: &str) -> std::io::Result<()> {
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
}

/// How a command talks to the person running it.
pub struct Ui {
    pub quiet: bool,
    /// The command's stdout is its answer (JSON, a table, a CSV): summaries
    /// go to stderr instead.
    pub summaries_on_stderr: bool,
}

impl Ui {
    /// A bar of `len` steps, or a hidden one.
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    }

    /// A spinner for work of unknown length, or a hidden one.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    /// Prints a summary where this command's summaries go.
    pub fn summary(&self, text: &str) -> std::io::Result<()> {
        if self.summaries_on_stderr {
            std::io::Write::write_fmt(&mut std::io::stderr().lock(), format_args!("{text}\n"))
        } else {
            say!("{text}")
        }
    }
}
