//! Plain-text and markdown tables for estimates.

use std::fmt;

use crate::estimate::{Basis, Estimate, Line};
use crate::numbers::{amount, money, significant, thousands};

/// Output format of [`Estimate::render`] and [`render_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Text,
    /// A GitHub-flavoured markdown table.
    Markdown,
}

/// "$0.20 / 1M", "$0.0053 / 1K", "$0.0000133334".
fn unit_price(line: &Line) -> String {
    let price = format!("${}", significant(line.price_usd, 10, 2));
    match line.price_per {
        1.0 => price,
        1_000.0 => format!("{price} / 1K"),
        1_000_000.0 => format!("{price} / 1M"),
        p => format!("{price} / {}", significant(p, 10, 0)),
    }
}

/// Aligned text or markdown; `right` says which columns are right-aligned.
pub(crate) struct Table {
    pub(crate) header: Vec<&'static str>,
    pub(crate) right: Vec<bool>,
    pub(crate) rows: Vec<Row>,
}

pub(crate) enum Row {
    Cells(Vec<String>),
    /// A rule in text, bold cells in markdown.
    Total(Vec<String>),
}

impl Table {
    pub(crate) fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Markdown => self.markdown(),
        }
    }

    fn text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            let (Row::Cells(cells) | Row::Total(cells)) = row;
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = width.saturating_sub(cell.chars().count());
                if self.right.get(i).copied().unwrap_or(false) {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            out
        };
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let mut out = line(&header);
        let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1));
        let mut ruled = false;
        for row in &self.rows {
            match row {
                Row::Cells(cells) => out.push_str(&line(cells)),
                Row::Total(cells) => {
                    if !ruled {
                        out.push_str(&rule);
                        out.push('\n');
                        ruled = true;
                    }
                    out.push_str(&line(cells));
                }
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let escape = |s: &str| s.replace('|', "\\|");
        let mut out = format!("| {} |\n|", self.header.join(" | "));
        for i in 0..self.header.len() {
            out.push_str(if self.right.get(i).copied().unwrap_or(false) { "---:|" } else { "---|" });
        }
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = match row {
                Row::Cells(cells) => cells.iter().map(|c| escape(c)).collect(),
                Row::Total(cells) => cells
                    .iter()
                    .map(|c| if c.is_empty() { String::new() } else { format!("**{}**", escape(c)) })
                    .collect(),
            };
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

impl Estimate {
    /// The itemised table with totals, a heading and the notes.
    pub fn render(&self, format: Format) -> String {
        let dash = || "-".to_owned();
        let mut rows: Vec<Row> = self
            .lines
            .iter()
            .map(|line| {
                let (quantity, per_million) = match line.basis {
                    Basis::PerCall => {
                        (format!("{} /call", significant(line.quantity, 6, 0)), money(line.per_million_calls))
                    }
                    Basis::PerMonth => (format!("{} /month", significant(line.quantity, 6, 0)), dash()),
                };
                Row::Cells(vec![
                    line.item.clone(),
                    quantity,
                    line.unit.clone(),
                    unit_price(line),
                    per_million,
                    money(line.per_month),
                ])
            })
            .collect();
        let total = |label: &str, per_million: String, per_month: f64| {
            Row::Total(vec![
                label.to_owned(),
                String::new(),
                String::new(),
                String::new(),
                per_million,
                money(per_month),
            ])
        };
        let variable = self.per_month - self.fixed_per_month;
        rows.push(total("per-call total", money(self.per_million_calls), variable));
        rows.push(total("monthly total", dash(), self.fixed_per_month));
        rows.push(total("total", money(self.per_million_calls), self.per_month));
        let table = Table {
            header: vec!["item", "quantity", "unit", "unit price", "per 1M calls", "per month"],
            right: vec![false, true, false, true, true, true],
            rows,
        };
        self.framed(format, &table)
    }

    /// The itemised table with each quantity for the whole month (`8,760,000,000 request`,
    /// `40,797 GB`), as a bill shows it; same heading and notes as [`Estimate::render`].
    pub fn render_monthly(&self, format: Format) -> String {
        let mut rows: Vec<Row> = self
            .lines
            .iter()
            .map(|line| {
                let quantity = match line.basis {
                    Basis::PerCall => line.quantity * self.calls_per_month as f64,
                    Basis::PerMonth => line.quantity,
                };
                Row::Cells(vec![
                    line.item.clone(),
                    amount(quantity),
                    line.unit.clone(),
                    unit_price(line),
                    money(line.per_month),
                ])
            })
            .collect();
        rows.push(Row::Total(vec![
            "total".to_owned(),
            String::new(),
            String::new(),
            String::new(),
            money(self.per_month),
        ]));
        let table = Table {
            header: vec!["item", "quantity a month", "unit", "unit price", "per month"],
            right: vec![false, true, false, true, true],
            rows,
        };
        self.framed(format, &table)
    }

    /// Heading, table, notes.
    fn framed(&self, format: Format, table: &Table) -> String {
        let events = if self.events_per_call == 1 {
            String::new()
        } else {
            format!(" of {} events", thousands(u64::from(self.events_per_call)))
        };
        let calls = match &self.call {
            Some(call) => format!("{call}s"),
            None => "calls".to_owned(),
        };
        let mut out = match format {
            Format::Text => format!(
                "{}: {}\nprices {} as of {} (USD); per month at {} {calls}{events}\n",
                self.profile,
                self.label,
                self.region,
                self.as_of,
                thousands(self.calls_per_month)
            ),
            Format::Markdown => format!(
                "### {}: {}\n\nPrices {} as of {} (USD); per month at {} {calls}{events}.\n",
                self.profile,
                self.label,
                self.region,
                self.as_of,
                thousands(self.calls_per_month)
            ),
        };
        if self.call.is_some() {
            out.push_str(&format!(
                "{}per 1,000 {calls}: {} (the per-call items; the monthly ones come on top){}\n",
                if format == Format::Markdown { "\n" } else { "" },
                money(self.per_million_calls / 1000.0),
                if format == Format::Markdown { "." } else { "" },
            ));
        }
        out.push('\n');
        out.push_str(&table.render(format));
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Format::Text))
    }
}

/// One row per estimate: id, label, prices, per 1M calls, fixed per month, total per month.
pub fn render_summary(estimates: &[Estimate], format: Format) -> String {
    let rows = estimates
        .iter()
        .map(|e| {
            Row::Cells(vec![
                e.profile.clone(),
                e.label.clone(),
                format!("{} {}", e.region, e.as_of),
                if e.per_million_calls > 0.0 { money(e.per_million_calls) } else { "-".to_owned() },
                money(e.fixed_per_month),
                format!("{} @ {}", money(e.per_month), thousands(e.calls_per_month)),
            ])
        })
        .collect();
    Table {
        header: vec!["id", "architecture", "prices", "per 1M calls", "fixed per month", "per month @ calls"],
        right: vec![false, false, false, true, true, true],
        rows,
    }
    .render(format)
}
