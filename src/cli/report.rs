//! Reports: one `Serialize` struct per listing, shown three ways from the same data:
//! a table for people, a markdown table for pull-request comments, and JSON for programs.
//! JSON is never derived from the human text.

use serde::Serialize;

use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::error::Result;
use crate::plan::render::Heading;

/// A listing command's result.
pub trait Report: Serialize {
    /// Column titles of the table.
    fn header(&self) -> &'static [&'static str];
    /// One row per item, cells as shown to people.
    fn rows(&self) -> Vec<Vec<String>>;
    /// What the report is about, shown first as in `plan`'s output (human and markdown).
    fn heading(&self) -> Option<Heading<'_>> {
        None
    }
    /// Lines before the table, after the heading (human and markdown).
    fn preamble(&self) -> Vec<String> {
        Vec::new()
    }
    /// Lines after the table (human and markdown).
    fn epilogue(&self) -> Vec<String> {
        Vec::new()
    }
    /// What people see instead of an empty table.
    fn empty(&self) -> Option<String> {
        None
    }
}

/// Prints a report on standard output in the format asked for.
pub fn emit(cx: &Context, report: &impl Report) -> Result<()> {
    match cx.format() {
        Format::Json => {
            let text = serde_json::to_string(report).expect("reports serialize to JSON");
            output::outln!("{text}")
        }
        Format::Markdown => {
            let mut text = report.heading().map(|h| h.markdown()).unwrap_or_default();
            for line in report.preamble() {
                text.push_str(&format!("{line}\n\n"));
            }
            text.push_str(&output::markdown_table(report.header(), &report.rows()));
            for line in report.epilogue() {
                text.push_str(&format!("\n{line}\n"));
            }
            output::out!("{text}")
        }
        Format::Human => {
            let mut text = report
                .heading()
                .map(|h| format!("{}\n\n", h.human()))
                .unwrap_or_default();
            for line in report.preamble() {
                text.push_str(&line);
                text.push('\n');
            }
            let rows = report.rows();
            match report.empty().filter(|_| rows.is_empty()) {
                Some(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                None => text.push_str(&output::table(report.header(), &rows)),
            }
            for line in report.epilogue() {
                text.push_str(&line);
                text.push('\n');
            }
            output::out!("{text}")
        }
    }
}

/// A list as one table cell.
pub fn cell(items: &[String]) -> String {
    items.join(",")
}
