//! Plain-text and markdown tables for estimates, and money formatting.

use std::fmt;

use crate::estimate::{Basis, Estimate, Line};

/// Output format of [`Estimate::render`] and [`render_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Text,
    /// A GitHub-flavoured markdown table.
    Markdown,
}

/// Dollars with enough digits to mean something: two decimals from $1 up (`$3.09`), three
/// significant digits below (`$0.0335`, `$0.0021`, `$0.20`).
pub fn money(usd: f64) -> String {
    // -0.0 and a rounding error below a millionth of a cent print as $0.00.
    let usd = if usd.abs() < 1e-8 { 0.0 } else { usd };
    if !usd.is_finite() {
        format!("${usd:.2}")
    } else if usd.abs() >= 0.995 {
        // Cents, with the dollars grouped by thousands: $30,240.00.
        let cents = format!("{:.2}", usd.abs());
        let (dollars, cents) = cents.split_at(cents.len() - 3);
        let sign = if usd < 0.0 { "-" } else { "" };
        format!("{sign}${}{cents}", group(dollars))
    } else {
        format!("${}", significant(usd, 3, 2))
    }
}

/// `v` to `sig` significant digits (no exponent), trailing zeros trimmed down to `min_decimals`.
pub(crate) fn significant(v: f64, sig: i32, min_decimals: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let decimals = if v == 0.0 {
        min_decimals
    } else {
        let magnitude = v.abs().log10().floor() as i32;
        usize::try_from((sig - 1 - magnitude).clamp(0, 15)).unwrap_or(0).max(min_decimals)
    };
    let mut s = format!("{v:.decimals$}");
    if let Some(dot) = s.find('.') {
        let keep = dot + 1 + min_decimals;
        while s.len() > keep && s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// 1000000 → "1,000,000".
pub fn thousands(n: u64) -> String {
    group(&n.to_string())
}

/// A count or quantity for people: grouped by thousands from 1,000 up (`8,760,000,000`,
/// `40,797`), six significant digits below (`730`, `0.125`, `5.33`).
pub fn amount(v: f64) -> String {
    if v.is_finite() && v.abs() >= 999.5 && v.abs() < 1e19 {
        let sign = if v < 0.0 { "-" } else { "" };
        format!("{sign}{}", thousands(v.abs().round() as u64))
    } else {
        significant(v, 6, 0)
    }
}

/// "1234567" → "1,234,567" (a string of ASCII digits).
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
        let mut out = match format {
            Format::Text => format!(
                "{}: {}\nprices {} as of {} (USD); per month at {} calls{events}\n",
                self.profile,
                self.label,
                self.region,
                self.as_of,
                thousands(self.calls_per_month)
            ),
            Format::Markdown => format!(
                "### {}: {}\n\nPrices {} as of {} (USD); per month at {} calls{events}.\n",
                self.profile,
                self.label,
                self.region,
                self.as_of,
                thousands(self.calls_per_month)
            ),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_three_significant_digits_below_a_dollar() {
        assert_eq!(money(3.0898), "$3.09");
        assert_eq!(money(19.3158), "$19.32");
        assert_eq!(money(0.0335), "$0.0335");
        assert_eq!(money(0.0021), "$0.0021");
        assert_eq!(money(0.2), "$0.20");
        assert_eq!(money(0.00033), "$0.00033");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(-0.0), "$0.00");
        assert_eq!(money(0.999), "$1.00");
    }

    #[test]
    fn money_groups_dollars_by_thousands() {
        assert_eq!(money(12_600.0), "$12,600.00");
        assert_eq!(money(30_240.004), "$30,240.00");
        assert_eq!(money(999.994), "$999.99");
        assert_eq!(money(999.996), "$1,000.00");
        assert_eq!(money(-1_234_567.891), "-$1,234,567.89");
    }

    #[test]
    fn amounts_are_grouped_from_a_thousand_up() {
        assert_eq!(amount(8_760_000_000.0), "8,760,000,000");
        assert_eq!(amount(40_796.875), "40,797");
        assert_eq!(amount(730.0), "730");
        assert_eq!(amount(0.125), "0.125");
        assert_eq!(amount(5.333333), "5.33333");
    }

    #[test]
    fn quantities_and_unit_prices_print_without_exponents() {
        assert_eq!(significant(0.002, 6, 0), "0.002");
        assert_eq!(significant(730.0, 6, 0), "730");
        assert_eq!(significant(182.5, 6, 0), "182.5");
        assert_eq!(significant(5120.0 / 1_073_741_824.0, 6, 0), "0.00000476837");
        assert_eq!(significant(0.0000166667, 10, 2), "0.0000166667");
        assert_eq!(significant(0.04656 * (1.0 - 0.7), 10, 2), "0.013968");
        assert_eq!(significant(1.16, 10, 2), "1.16");
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345), "12,345");
    }
}
