//! Reading source tables row by row: CSV/TSV and JSON lines streamed (also
//! through gzip or zstd), Parquet through polars; every file of a glob in
//! name order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use polars::prelude::*;

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
    postgres: Option<(String, String)>,
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
        for_each_file_row(
            files,
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
pub(crate) struct Header {
    pub(crate) names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    fn new(names: Vec<String>) -> Self {
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

fn open(path: &Path) -> Result<Box<dyn Read>, ImportError> {
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

/// The rows of one CSV stream, with its header.
fn csv_rows<S>(
    input: impl Read,
    delimiter: u8,
    path: &Path,
    start: &mut impl FnMut(&Path, &Header) -> Result<S, ImportError>,
    each: &mut impl FnMut(&mut S, &RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let read_error = |message: String| ImportError::Io {
        path: path.to_owned(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(input);
    let header = Header::new(
        reader
            .headers()
            .map_err(|e| read_error(e.to_string()))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect(),
    );
    let mut state = start(path, &header)?;
    let mut record = csv::StringRecord::new();
    let mut row = 0;
    while reader
        .read_record(&mut record)
        .map_err(|e| read_error(format!("row {}: {e}", row + 1)))?
    {
        row += 1;
        let at = RowAt {
            file: path,
            row,
            header: &header,
        };
        each(&mut state, &at, &record)?;
    }
    Ok(())
}

/// Calls `start` with each file's header (to resolve columns), then `each`
/// with every row of the file. JSON lines have no header: theirs is the first
/// object's keys and the `wanted` columns, since a key may be absent from
/// some objects.
pub(crate) fn for_each_row<S>(
    files: &SourceFiles,
    wanted: &[String],
    mut start: impl FnMut(&Path, &Header) -> Result<S, ImportError>,
    mut each: impl FnMut(&mut S, &RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let Some(joined) = &files.joined else {
        return for_each_file_row(files, wanted, start, each);
    };
    // The row's own columns, then the joined ones it does not have.
    let own: Vec<String> = wanted
        .iter()
        .filter(|w| !joined.columns.contains(w))
        .cloned()
        .collect();
    for_each_file_row(
        files,
        &own,
        |path, header| {
            let key = header
                .position(&joined.key)
                .ok_or_else(|| ImportError::Io {
                    path: path.to_owned(),
                    message: format!(
                        "join: key column {:?} is not there (columns: {})",
                        joined.key,
                        header.names.join(", ")
                    ),
                })?;
            let added: Vec<usize> = (0..joined.columns.len())
                .filter(|&j| header.position(&joined.columns[j]).is_none())
                .collect();
            let mut names = header.names.clone();
            names.extend(added.iter().map(|&j| joined.columns[j].clone()));
            let extended = Header::new(names);
            let state = start(path, &extended)?;
            Ok((state, extended, key, header.names.len(), added))
        },
        |(state, extended, key, own_len, added), at, row| {
            let found = row.get(*key).and_then(|k| joined.rows.get(k.trim()));
            let mut values: Vec<Option<String>> = (0..*own_len)
                .map(|i| row.get(i).map(str::to_owned))
                .collect();
            values.extend(added.iter().map(|&j| found.and_then(|r| r[j].clone())));
            let at = RowAt {
                file: at.file,
                row: at.row,
                header: extended,
            };
            each(state, &at, &values)
        },
    )
}

fn for_each_file_row<S>(
    files: &SourceFiles,
    wanted: &[String],
    mut start: impl FnMut(&Path, &Header) -> Result<S, ImportError>,
    mut each: impl FnMut(&mut S, &RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    for path in &files.files {
        let read_error = |message: String| ImportError::Io {
            path: path.clone(),
            message,
        };
        match files.format {
            Format::Csv | Format::Tsv => {
                let delimiter = if files.format == Format::Tsv {
                    b'\t'
                } else {
                    b','
                };
                csv_rows(open(path)?, delimiter, path, &mut start, &mut each)?;
            }
            Format::Postgres => {
                let Some((url, query)) = &files.postgres else {
                    return Err(read_error("no query".into()));
                };
                let mut client = postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|e| read_error(format!("cannot connect: {e}")))?;
                // COPY streams the result: rows arrive as they are read, and
                // the whole result is never in memory.
                let copy = format!("COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)");
                let reader = client
                    .copy_out(copy.as_str())
                    .map_err(|e| read_error(format!("the query failed: {e}")))?;
                csv_rows(reader, b',', path, &mut start, &mut each)?;
            }
            Format::Jsonl => {
                let reader = BufReader::new(open(path)?);
                let mut header: Option<Header> = None;
                let mut state = None;
                for (k, line) in reader.lines().enumerate() {
                    let line = line.map_err(|e| read_error(format!("line {}: {e}", k + 1)))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let object: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&line)
                            .map_err(|e| read_error(format!("line {}: {e}", k + 1)))?;
                    let h = header.get_or_insert_with(|| {
                        let mut names: Vec<String> = object.keys().cloned().collect();
                        for w in wanted {
                            if !names.contains(w) {
                                names.push(w.clone());
                            }
                        }
                        Header::new(names)
                    });
                    if state.is_none() {
                        state = Some(start(path, h)?);
                    }
                    let values: Vec<Option<String>> = h
                        .names
                        .iter()
                        .map(|n| match object.get(n) {
                            None | Some(serde_json::Value::Null) => None,
                            Some(serde_json::Value::String(s)) => Some(s.clone()),
                            Some(other) => Some(other.to_string()),
                        })
                        .collect();
                    if let Some(s) = state.as_mut() {
                        let at = RowAt {
                            file: path,
                            row: k + 1,
                            header: h,
                        };
                        each(s, &at, &values)?;
                    }
                }
            }
            Format::Parquet => {
                let file = File::open(path).map_err(|e| read_error(e.to_string()))?;
                let frame = ParquetReader::new(file)
                    .finish()
                    .map_err(|e| read_error(e.to_string()))?;
                let header = Header::new(
                    frame
                        .get_column_names()
                        .iter()
                        .map(|n| n.to_string())
                        .collect(),
                );
                let columns: Vec<StringChunked> = frame
                    .columns()
                    .iter()
                    .map(|c| {
                        let text = match c.dtype() {
                            DataType::Datetime(_, _) | DataType::Date => c
                                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                                .and_then(|c| c.cast(&DataType::Int64))
                                .and_then(|c| c.cast(&DataType::String)),
                            _ => c.cast(&DataType::String),
                        };
                        text.and_then(|c| c.str().cloned())
                            .map_err(|e| read_error(format!("column {}: {e}", c.name())))
                    })
                    .collect::<Result<_, _>>()?;
                let mut state = start(path, &header)?;
                for row in 0..frame.height() {
                    let values: Vec<Option<String>> = columns
                        .iter()
                        .map(|c| c.get(row).map(str::to_owned))
                        .collect();
                    let at = RowAt {
                        file: path,
                        row: row + 1,
                        header: &header,
                    };
                    each(&mut state, &at, &values)?;
                }
            }
        }
    }
    Ok(())
}
