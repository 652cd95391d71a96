//! The report formats and the files each one writes: one table that the command line, the
//! config and the bundle writer all read.

use std::io::Write;

use crate::Report;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Html,
    Md,
    Csv,
    Json,
    Oscal,
}

/// Renders the model into one file of a format.
pub type Renderer = fn(&Report, &mut dyn Write) -> std::io::Result<()>;

impl Format {
    /// Every format, in the order a bundle writes them.
    pub const ALL: [Format; 5] = [
        Format::Html,
        Format::Md,
        Format::Csv,
        Format::Json,
        Format::Oscal,
    ];

    /// The name `--format` and `[report] formats` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Md => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Oscal => "oscal",
        }
    }

    /// `html, md, csv, json or oscal`, for messages.
    pub fn list() -> String {
        let names = Format::ALL.map(Format::as_str);
        format!(
            "{} or {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        )
    }

    /// The files this format writes, each with its renderer.
    pub fn files(self) -> &'static [(&'static str, Renderer)] {
        match self {
            Format::Html => &[("report.html", |m, mut o| crate::render_html(m, &mut o))],
            Format::Md => &[("report.md", |m, mut o| crate::render_markdown(m, &mut o))],
            Format::Csv => &[
                ("controls.csv", |m, mut o| {
                    crate::render_controls_csv(m, &mut o)
                }),
                ("gaps.csv", |m, mut o| crate::render_gaps_csv(m, &mut o)),
                ("findings.csv", |m, mut o| {
                    crate::render_findings_csv(m, &mut o)
                }),
                ("evidence.csv", |m, mut o| {
                    crate::render_evidence_csv(m, &mut o)
                }),
                ("soa.csv", |m, mut o| {
                    crate::render_soa_csv(&m.soa, m.csv_bom, &mut o)
                }),
            ],
            Format::Json => &[("report.json", |m, mut o| crate::render_json(m, &mut o))],
            Format::Oscal => &[
                ("oscal-assessment-results.json", |m, mut o| {
                    crate::render_oscal(m, &mut o)
                }),
                (crate::oscal::PLAN, |m, mut o| {
                    crate::oscal::render_oscal_plan(m, &mut o)
                }),
                (crate::oscal::CATALOG, |m, mut o| {
                    crate::oscal::render_oscal_catalog(m, &mut o)
                }),
            ],
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    /// Case-insensitive, as the command line always took it.
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown format `{s}`; use {}", Format::list()))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
