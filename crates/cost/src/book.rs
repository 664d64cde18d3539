//! Price files: parsing, validation, inheritance and the built-in books.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::CostError;
use crate::profile::Profile;

/// Every price a book must have (after inheritance): what the built-in profiles and the
/// Firehose / SQS / Kinesis helpers use. Books may carry more (other instance types).
pub const REQUIRED_PRICES: &[&str] = &[
    "lambda.request",
    "lambda.gb_second_x86_64",
    "lambda.gb_second_arm64",
    "lambda.provisioned_gb_second_x86_64",
    "lambda.provisioned_gb_second_arm64",
    "apigw.http_request",
    "apigw.rest_request",
    "dynamodb.write_request_unit",
    "dynamodb.read_request_unit",
    "s3.put_request",
    "s3.get_request",
    "sqs.request",
    "firehose.gb_ingested",
    "kinesis.shard_hour",
    "kinesis.put_payload_unit",
    "kinesis.on_demand_gb_in",
    "kinesis.on_demand_gb_out",
    "kinesis.on_demand_stream_hour",
    "cloudwatch.custom_metric_month",
    "cloudwatch.logs_gb_ingested",
    "ec2.t2.micro",
    "ec2.t3.micro",
    "ec2.t4g.micro",
    "ec2.t4g.small",
    "eks.cluster_hour",
    "ebs.gp2_gb_month",
    "ebs.gp3_gb_month",
    "fargate.vcpu_hour",
    "fargate.gb_hour",
    "fargate.spot_discount",
    "elb.alb_hour",
    "elb.lcu_hour",
    "elb.nlb_hour",
    "efs.standard_gb_month",
];

/// The unit of a price that is a share off another price (`fargate.spot_discount`).
pub(crate) const FRACTION_UNIT: &str = "fraction";

/// The built-in price files, parents before the files that inherit from them.
const BUILTIN: &[(&str, &str)] = &[
    ("eu-west-2-2026-11.toml", include_str!("../prices/eu-west-2-2026-11.toml")),
    ("us-east-1-2026-11.toml", include_str!("../prices/us-east-1-2026-11.toml")),
    ("eu-west-2-2021.toml", include_str!("../prices/eu-west-2-2021.toml")),
];

/// One price: `usd` dollars per `per` `unit`s (e.g. $0.20 per 1,000,000 requests).
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// `<service>.<item>`, e.g. `lambda.request`, `ec2.t4g.micro`.
    pub key: String,
    /// Dollars per `per` units, as written in the file.
    pub usd: f64,
    /// How many units `usd` buys (1, 1,000, 1,000,000).
    pub per: f64,
    /// What is counted, singular: `request`, `GB-second`, `instance-hour`, `fraction`.
    pub unit: String,
    /// The AWS pricing page.
    pub source: String,
    /// Provenance and caveats (e.g. "from the issue text; not re-checked offline").
    pub note: Option<String>,
    /// The file the price was read from (the parent's, for an inherited price).
    pub file: String,
}

impl Price {
    /// Dollars for one unit.
    pub fn unit_usd(&self) -> f64 {
        self.usd / self.per
    }
}

/// A validated set of prices for one region at one date.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceBook {
    id: String,
    file: String,
    region: String,
    as_of: String,
    inherits: Option<String>,
    prices: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    region: String,
    as_of: String,
    currency: String,
    #[serde(default)]
    inherits: Option<String>,
    #[serde(default)]
    prices: BTreeMap<String, BTreeMap<String, RawPrice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    usd: f64,
    #[serde(default = "one")]
    per: f64,
    unit: String,
    source: String,
    #[serde(default)]
    note: Option<String>,
}

fn one() -> f64 {
    1.0
}

impl PriceBook {
    /// Parses and validates a price file whose text the caller read; `name` (usually the file
    /// name) appears in every error. `inherits` may name a built-in book.
    pub fn parse(text: &str, name: &str) -> Result<PriceBook, CostError> {
        Self::parse_with(text, name, |id| builtin_books().ok()?.iter().find(|book| book.id == id))
    }

    fn parse_with<'a>(
        text: &str,
        name: &str,
        parent: impl Fn(&str) -> Option<&'a PriceBook>,
    ) -> Result<PriceBook, CostError> {
        let raw: RawBook = toml::from_str(text).map_err(|err| CostError::Parse {
            file: name.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: &str, reason: String| CostError::InvalidPrice {
            file: name.to_owned(),
            key: key.to_owned(),
            reason,
        };
        if raw.currency != "USD" {
            return Err(invalid("currency", format!("`{}` is not supported; only USD", raw.currency)));
        }
        if raw.region.is_empty()
            || !raw.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid("region", format!("`{}` is not a region code like eu-west-2", raw.region)));
        }
        if !is_date(&raw.as_of) {
            return Err(invalid("as_of", format!("`{}` is not YYYY or YYYY-MM", raw.as_of)));
        }
        let mut prices = match &raw.inherits {
            None => BTreeMap::new(),
            Some(id) => match parent(id) {
                Some(book) => book.prices.clone(),
                None => {
                    return Err(CostError::UnknownParent {
                        file: name.to_owned(),
                        parent: id.clone(),
                        known: BUILTIN
                            .iter()
                            .map(|(file, _)| file.trim_end_matches(".toml"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            },
        };
        for (service, items) in raw.prices {
            for (item, p) in items {
                let key = format!("{service}.{item}");
                validate(&key, &p).map_err(|reason| invalid(&key, reason))?;
                let price = Price {
                    key: key.clone(),
                    usd: p.usd,
                    per: p.per,
                    unit: p.unit,
                    source: p.source,
                    note: p.note,
                    file: name.to_owned(),
                };
                prices.insert(key, price);
            }
        }
        if let Some(key) = REQUIRED_PRICES.iter().find(|key| !prices.contains_key(**key)) {
            return Err(CostError::MissingPrice { file: name.to_owned(), key: (*key).to_owned() });
        }
        Ok(PriceBook {
            id: format!("{}-{}", raw.region, raw.as_of),
            file: name.to_owned(),
            region: raw.region,
            as_of: raw.as_of,
            inherits: raw.inherits,
            prices,
        })
    }

    /// `<region>-<as_of>`, e.g. `eu-west-2-2026-11`: what `inherits` names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name the book was parsed under (the file name for built-in books).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// AWS region code, e.g. `eu-west-2`.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The date the prices are for: `YYYY` or `YYYY-MM`.
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// Always `USD`.
    pub fn currency(&self) -> &str {
        "USD"
    }

    /// The book this one started from, if any.
    pub fn inherits(&self) -> Option<&str> {
        self.inherits.as_deref()
    }

    /// One price by key, e.g. `lambda.request`.
    pub fn price(&self, key: &str) -> Result<&Price, CostError> {
        self.prices
            .get(key)
            .ok_or_else(|| CostError::MissingPrice { file: self.file.clone(), key: key.to_owned() })
    }

    /// Every price, by key.
    pub fn prices(&self) -> impl Iterator<Item = &Price> {
        self.prices.values()
    }

    /// The EC2 instance types this book prices (keys `ec2.<type>`).
    pub fn instance_types(&self) -> Vec<&str> {
        self.prices.keys().filter_map(|key| key.strip_prefix("ec2.")).collect()
    }

    /// Checks that every price `profile` can use is in this book.
    pub fn check_profile(&self, profile: &Profile) -> Result<(), CostError> {
        match profile.price_keys().into_iter().find(|key| !self.prices.contains_key(key)) {
            Some(key) => {
                Err(CostError::UnknownPriceKey { profile: profile.id.clone(), key, book: self.file.clone() })
            }
            None => Ok(()),
        }
    }

    /// Dollars for one unit of `key`, or the error naming the book and key.
    pub(crate) fn unit_usd(&self, key: &str) -> Result<f64, CostError> {
        self.price(key).map(Price::unit_usd)
    }
}

fn validate(key: &str, p: &RawPrice) -> Result<(), String> {
    if !(p.usd.is_finite() && p.usd > 0.0) {
        return Err(format!("usd = {} must be positive and finite", p.usd));
    }
    if !(p.per.is_finite() && p.per > 0.0) {
        return Err(format!("per = {} must be positive and finite", p.per));
    }
    if p.unit == FRACTION_UNIT && p.usd >= 1.0 {
        return Err(format!("usd = {} is a fraction (unit = \"fraction\") and must be below 1", p.usd));
    }
    if p.unit.trim().is_empty() {
        return Err("unit must not be empty".to_owned());
    }
    if !p.source.starts_with("https://") {
        return Err(format!("source `{}` must be the https:// address of the AWS pricing page", p.source));
    }
    if key.split('.').any(str::is_empty) {
        return Err("a price key is <service>.<item>".to_owned());
    }
    Ok(())
}

fn is_date(s: &str) -> bool {
    let bytes = s.as_bytes();
    let year = |b: &[u8]| b.len() == 4 && b.iter().all(u8::is_ascii_digit);
    match bytes.len() {
        4 => year(bytes),
        7 => {
            year(&bytes[..4])
                && bytes[4] == b'-'
                && matches!(&bytes[5..], [b'0', b'1'..=b'9'] | [b'1', b'0'..=b'2'])
        }
        _ => false,
    }
}

static BOOKS: OnceLock<Result<Vec<PriceBook>, CostError>> = OnceLock::new();

/// Every built-in price book (`crates/cost/prices/*.toml`), parsed once.
pub fn builtin_books() -> Result<&'static [PriceBook], CostError> {
    BOOKS
        .get_or_init(|| {
            let mut books: Vec<PriceBook> = Vec::with_capacity(BUILTIN.len());
            for (name, text) in BUILTIN {
                let book = PriceBook::parse_with(text, name, |id| books.iter().find(|b| b.id == id))?;
                books.push(book);
            }
            Ok(books)
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The built-in book for `region` at `as_of` (`YYYY` or `YYYY-MM`), or the region's latest when
/// `as_of` is `None`. Unknown regions and dates are errors listing the known ones.
pub fn book(region: &str, as_of: Option<&str>) -> Result<&'static PriceBook, CostError> {
    let books = builtin_books()?;
    let in_region: Vec<&PriceBook> = books.iter().filter(|b| b.region == region).collect();
    let found = match as_of {
        None => in_region.iter().max_by(|a, b| a.as_of.cmp(&b.as_of)),
        Some(date) => in_region.iter().find(|b| b.as_of == date),
    };
    match (found, as_of) {
        (Some(book), _) => Ok(book),
        (None, Some(date)) if !in_region.is_empty() => Err(CostError::UnknownDate {
            region: region.to_owned(),
            as_of: date.to_owned(),
            known: in_region.iter().map(|b| b.as_of.as_str()).collect::<Vec<_>>().join(", "),
        }),
        (None, _) => {
            let mut known: Vec<&str> = books.iter().map(|b| b.region.as_str()).collect();
            known.sort_unstable();
            known.dedup();
            Err(CostError::UnknownRegion { region: region.to_owned(), known: known.join(", ") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_a_year_or_a_year_and_month() {
        for good in ["2021", "2026-11", "2024-01", "2024-12"] {
            assert!(is_date(good), "{good}");
        }
        for bad in ["", "21", "2026-13", "2026-00", "2026-1", "2026/11", "2026-11-01"] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn built_in_file_names_are_their_book_ids() -> Result<(), CostError> {
        let books = builtin_books()?;
        assert_eq!(books.len(), BUILTIN.len());
        for ((name, _), book) in BUILTIN.iter().zip(books) {
            assert_eq!(*name, format!("{}.toml", book.id()));
            assert_eq!(book.file(), *name);
        }
        Ok(())
    }
}
