//! Writing results: every file goes through `churn_core::write_atomically`
//! (temporary file, fsync, rename, fsync of the directory), so a reader never
//! sees half a report and a crash leaves the previous one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use churn_model::logs::LineReject;

use crate::ui::say;

/// Writes `path` atomically with `write`.
pub fn write_file(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    churn_core::write_atomically(path, write)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `value` as pretty JSON (with a final newline) to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    write_file(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        Ok(std::io::Write::write_all(w, b"\n")?)
    })
}

/// Writes `<out>/<stem>.json` (pretty) and `<out>/<stem>.html` and says where.
pub fn write_json_and_html(
    out: &Path,
    stem: &str,
    value: &impl serde::Serialize,
    html: &str,
) -> Result<()> {
    churn_core::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json_path = out.join(format!("{stem}.json"));
    write_json(&json_path, value)?;
    let html_path = out.join(format!("{stem}.html"));
    write_file(&html_path, |w| {
        Ok(std::io::Write::write_all(w, html.as_bytes())?)
    })?;
    say!("wrote {} and {}", json_path.display(), html_path.display())?;
    Ok(())
}

/// Writes refused log lines to `<out>/rejects/<name>.csv` (row = line number,
/// field, reason, then the file and the line's text) and returns the path.
pub fn write_log_rejects(out: &Path, name: &str, rejects: &[LineReject]) -> Result<PathBuf> {
    let dir = out.join("rejects");
    churn_core::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.csv"));
    let rows: Vec<churn_data::Reject> = rejects
        .iter()
        .map(|r| churn_data::Reject {
            row: r.source.line,
            field: r.field.clone(),
            reason: r.reason.clone(),
            values: vec![r.source.file.display().to_string(), r.source.text.clone()],
        })
        .collect();
    churn_data::write_rejects_file(&["file".into(), "line_text".into()], &rows, &path)?;
    Ok(path)
}
