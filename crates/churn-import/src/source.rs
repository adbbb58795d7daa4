//! Finding a source's files (a glob, in name order) or query, opening them
//! (through gzip, zstd or xz), and what a row is; `batches` reads them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::ImportError;

/// The file format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Tsv,
    Jsonl,
    Parquet,
    /// A query's result streamed from PostgreSQL (`COPY … TO STDOUT`).
    Postgres,
}

impl Format {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            "postgres" | "postgresql" => Some(Format::Postgres),
            _ => None,
        }
    }
}

/// How a file is compressed (from its last extension).
fn compression_and_stem(path: &Path) -> (Option<&'static str>, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (ext, kind) in [(".gz", "gzip"), (".zst", "zstd"), (".xz", "xz")] {
        if let Some(stem) = name.strip_suffix(ext) {
            return (Some(kind), stem.to_owned());
        }
    }
    (None, name)
}

/// A source's files (a glob, in name order) and their format, or a query.
pub(crate) struct SourceFiles {
    /// The files; for a query, one name that says which query it was.
    pub(crate) files: Vec<PathBuf>,
    pub(crate) format: Format,
    /// For [`Format::Postgres`]: the connection string and the query.
    pub(crate) postgres: Option<(String, String)>,
    /// Another source's columns added to each row (`sources.X.join`).
    pub(crate) joined: Option<Joined>,
}

/// The rows of a joined source by key: what [`for_each_row`] adds.
pub(crate) struct Joined {
    /// The key column of the rows joined to.
    pub(crate) key: String,
    /// The added column names.
    pub(crate) columns: Vec<String>,
    /// Key → the added columns' values (the first row of a key).
    pub(crate) rows: HashMap<String, Vec<Option<String>>>,
}

impl Joined {
    /// Reads `columns` (default: all but the key) of `files` by `key`.
    pub(crate) fn read(
        files: &SourceFiles,
        key: &str,
        columns: Option<&[String]>,
    ) -> Result<Self, ImportError> {
        let mut joined = Joined {
            key: key.to_owned(),
            columns: Vec::new(),
            rows: HashMap::new(),
        };
        let mut wanted: Vec<String> = columns.map(<[String]>::to_vec).unwrap_or_default();
        wanted.push(key.to_owned());
        crate::batches::for_each_row_joined(
            files,
            None,
            &wanted,
            |path, header| {
                let missing = |column: &str| ImportError::Io {
                    path: path.to_owned(),
                    message: format!(
                        "join: column {column:?} is not there (columns: {})",
                        header.names.join(", ")
                    ),
                };
                let key_at = header.position(key).ok_or_else(|| missing(key))?;
                let names: Vec<String> = match columns {
                    Some(list) => list.to_vec(),
                    None => header.names.iter().filter(|n| *n != key).cloned().collect(),
                };
                let at = names
                    .iter()
                    .map(|n| header.position(n).ok_or_else(|| missing(n)))
                    .collect::<Result<Vec<usize>, _>>()?;
                if joined.columns.is_empty() {
                    joined.columns = names;
                }
                Ok((key_at, at))
            },
            |(key_at, at), _, row| {
                if let Some(k) = row.get(*key_at) {
                    let values = at.iter().map(|&i| row.get(i).map(str::to_owned)).collect();
                    joined.rows.entry(k.trim().to_owned()).or_insert(values);
                }
                Ok(())
            },
        )?;
        Ok(joined)
    }
}

impl SourceFiles {
    /// A PostgreSQL query; the connection string from `url`, else from the
    /// environment variable `url_env` (default `DATABASE_URL`), so that a
    /// password need not be written in the mapping.
    pub(crate) fn query(
        name: &str,
        query: &str,
        url: Option<&str>,
        url_env: Option<&str>,
    ) -> Result<Self, ImportError> {
        let variable = url_env.unwrap_or("DATABASE_URL");
        let url = match url {
            Some(u) => u.to_owned(),
            None => std::env::var(variable).map_err(|_| ImportError::Source {
                source_name: name.to_owned(),
                message: format!(
                    "a query needs a connection: set url in the mapping or the environment variable {variable}"
                ),
            })?,
        };
        Ok(SourceFiles {
            files: vec![PathBuf::from(format!("postgresql query of source {name}"))],
            format: Format::Postgres,
            postgres: Some((url, query.trim().trim_end_matches(';').to_owned())),
            joined: None,
        })
    }

    /// Expands `pattern` (relative to `dir`) and settles the format.
    pub(crate) fn find(
        name: &str,
        dir: &Path,
        pattern: &str,
        format: Option<&str>,
    ) -> Result<Self, ImportError> {
        let full = dir.join(pattern);
        let text = full.to_string_lossy().into_owned();
        let bad = |message: String| ImportError::Source {
            source_name: name.to_owned(),
            message,
        };
        let mut files: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| bad(format!("path {pattern:?} is not a valid glob: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(bad(format!(
                "path {pattern:?} matches no file (looked for {text})"
            )));
        }
        let format = match format {
            Some(f) => Format::parse(f).ok_or_else(|| {
                bad(format!(
                    "format {f:?} is not one of csv, tsv, jsonl, parquet"
                ))
            })?,
            None => {
                let (_, stem) = compression_and_stem(&files[0]);
                let ext = stem
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                Format::parse(&ext).ok_or_else(|| {
                    bad(format!(
                        "cannot tell the format of {} from its extension: set format",
                        files[0].display()
                    ))
                })?
            }
        };
        if format == Format::Postgres {
            return Err(bad("format postgres needs a query, not a path".into()));
        }
        Ok(SourceFiles {
            files,
            format,
            postgres: None,
            joined: None,
        })
    }
}

/// The columns of one file.
#[derive(Clone)]
pub(crate) struct Header {
    pub(crate) names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Header { names, index }
    }

    /// The position of a column.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// One row's values by column position; empty text is absent.
pub(crate) trait Row {
    fn get(&self, i: usize) -> Option<&str>;
    /// Every value, for a reject's record.
    fn values(&self, header: &Header) -> serde_json::Map<String, serde_json::Value> {
        header
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v = self.get(i).map_or(serde_json::Value::Null, |s| s.into());
                (n.clone(), v)
            })
            .collect()
    }
}

impl Row for csv::StringRecord {
    fn get(&self, i: usize) -> Option<&str> {
        csv::StringRecord::get(self, i).filter(|s| !s.is_empty())
    }
}

impl Row for Vec<Option<String>> {
    fn get(&self, i: usize) -> Option<&str> {
        self.as_slice().get(i)?.as_deref().filter(|s| !s.is_empty())
    }
}

pub(crate) fn open(path: &Path) -> Result<Box<dyn Read>, ImportError> {
    let io = |e: std::io::Error| ImportError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io)?;
    Ok(match compression_and_stem(path).0 {
        Some("gzip") => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new_multi_decoder(BufReader::new(
            file,
        ))),
        Some(_) => Box::new(zstd::Decoder::new(file).map_err(io)?),
        None => Box::new(file),
    })
}

/// What a callback is told about the row it gets.
pub(crate) struct RowAt<'a> {
    pub(crate) file: &'a Path,
    /// 1-based data row within the file.
    pub(crate) row: usize,
    pub(crate) header: &'a Header,
}
