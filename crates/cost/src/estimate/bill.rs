//! The bill an estimate draws up: each item priced from the book — its quantity × the unit price
//! (less any discount), per call or per month — and the lines and notes, in the order they come.

use super::{Basis, Line, MILLION, Params};
use crate::CostError;
use crate::book::PriceBook;
use crate::profile::Profile;

/// What an estimate has so far, and what it prices with.
pub(super) struct Bill<'a> {
    pub(super) profile: &'a Profile,
    pub(super) book: &'a PriceBook,
    pub(super) params: &'a Params,
    pub(super) lines: Vec<Line>,
    pub(super) notes: Vec<String>,
}

impl<'a> Bill<'a> {
    pub(super) fn new(profile: &'a Profile, book: &'a PriceBook, params: &'a Params) -> Bill<'a> {
        Bill { profile, book, params, lines: Vec::new(), notes: Vec::new() }
    }

    /// Adds a line: `quantity` units of the price `key`, less `discount` (a fraction).
    pub(super) fn push(
        &mut self,
        item: String,
        key: &str,
        basis: Basis,
        quantity: f64,
        discount: f64,
    ) -> Result<(), CostError> {
        let line = self.line(item, key, basis, quantity, discount)?;
        self.lines.push(line);
        Ok(())
    }

    /// One priced line; an error if the book lacks the price.
    fn line(
        &self,
        item: String,
        key: &str,
        basis: Basis,
        quantity: f64,
        discount: f64,
    ) -> Result<Line, CostError> {
        let price = self.book.price(key).map_err(|_| CostError::UnknownPriceKey {
            profile: self.profile.id.clone(),
            key: key.to_owned(),
            book: self.book.file().to_owned(),
        })?;
        let price_usd = price.usd * (1.0 - discount);
        let unit_usd = price_usd / price.per;
        let (per_million_calls, per_month) = match basis {
            Basis::PerCall => {
                let per_million = quantity * unit_usd * MILLION;
                (per_million, per_million * self.params.calls_per_month as f64 / MILLION)
            }
            Basis::PerMonth => (0.0, quantity * unit_usd),
        };
        Ok(Line {
            item,
            price_key: key.to_owned(),
            basis,
            quantity,
            unit: price.unit.clone(),
            price_usd,
            price_per: price.per,
            per_million_calls,
            per_month,
        })
    }
}
