//! Self-contained HTML reports: one file with inline CSS and inline SVG charts
//! (drawn with plotters), so it opens anywhere without a server or network.
//!
//! The crate knows charts and pages, not models: `churn-train` and `churn ab`
//! decide what to show.

mod charts;

pub use charts::{
    BarChart, Beeswarm, BeeswarmRow, IntervalChart, IntervalRow, Legend, LineChart, Series, Style,
};

use std::fmt::Write as _;

/// What can go wrong drawing a chart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("chart {title:?}: {reason}")]
    Chart { title: String, reason: String },
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page built section by section.
pub struct Page {
    title: String,
    body: String,
}

/// A table cell: text, or a number shown with the given decimals.
#[derive(Debug, Clone)]
pub enum Cell {
    Text(String),
    Number(f64, usize),
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::Text(text)
    }
}

const STYLE: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1180px;color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
p.note{color:#52606d;margin:.3rem 0 1rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f7fa}
.grid{display:flex;flex-wrap:wrap;gap:1rem}.grid figure{margin:0}
figure svg{border:1px solid #e4e7eb;border-radius:4px;background:#fff}
figcaption{font-size:.85rem;color:#52606d;max-width:560px}
";

impl Page {
    pub fn new(title: &str) -> Self {
        Page {
            title: title.to_owned(),
            body: format!("<h1>{}</h1>\n", escape(title)),
        }
    }

    /// A section heading.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.body, "<h2>{}</h2>", escape(text));
        self
    }

    /// A paragraph of plain text.
    pub fn note(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", escape(text));
        self
    }

    /// A table; the first column is left-aligned.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<Cell>]) -> &mut Self {
        self.body.push_str("<table><thead><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr></thead><tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                match cell {
                    Cell::Text(t) => {
                        let _ = write!(self.body, "<td>{}</td>", escape(t));
                    }
                    Cell::Number(v, d) if v.is_finite() => {
                        let _ = write!(self.body, "<td>{v:.d$}</td>", d = *d);
                    }
                    Cell::Number(..) => self.body.push_str("<td>–</td>"),
                }
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table>\n");
        self
    }

    /// Charts side by side, each an SVG with a caption.
    pub fn charts(&mut self, charts: &[(String, &str)]) -> &mut Self {
        self.body.push_str("<div class=\"grid\">\n");
        for (svg, caption) in charts {
            let _ = writeln!(
                self.body,
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                escape(caption)
            );
        }
        self.body.push_str("</div>\n");
        self
    }

    /// The finished document.
    pub fn finish(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head>\n<body>\n{}</body></html>\n",
            escape(&self.title),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_rounded() {
        let mut page = Page::new("a <b> & \"c\"");
        page.table(
            &["k", "v"],
            &[
                vec![Cell::from("<x>"), Cell::Number(0.123456, 3)],
                vec![Cell::from("nan"), Cell::Number(f64::NAN, 2)],
            ],
        );
        let html = page.finish();
        assert!(html.contains("<h1>a &lt;b&gt; &amp; &quot;c&quot;</h1>"));
        assert!(html.contains("<td>&lt;x&gt;</td><td>0.123</td>"));
        assert!(html.contains("<td>nan</td><td>–</td>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }
}
