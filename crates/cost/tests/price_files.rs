//! Price and profile files: the built-in ones are complete and consistent; malformed ones are
//! errors that name the file and the key.

use cost::{CostError, PriceBook, REQUIRED_PRICES, builtin_books, estimate, parse_profiles};

const LONDON: &str = include_str!("../prices/eu-west-2-2026-11.toml");

fn parse_err(text: &str) -> String {
    match PriceBook::parse(text, "mine.toml") {
        Ok(book) => format!("unexpectedly parsed {}", book.id()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn every_profile_resolves_in_every_built_in_book() -> Result<(), CostError> {
    for book in builtin_books()? {
        for profile in cost::profiles()? {
            book.check_profile(profile)?;
            let e = estimate(profile, book, &cost::Params::default())?;
            assert!(e.per_month.is_finite() && e.per_month > 0.0, "{e}");
            for line in &e.lines {
                assert!(line.per_month.is_finite() && line.per_month >= 0.0, "{e}");
            }
        }
    }
    Ok(())
}

#[test]
fn every_built_in_price_has_a_source_and_an_honest_note() -> Result<(), CostError> {
    for book in builtin_books()? {
        for key in REQUIRED_PRICES {
            let price = book.price(key)?;
            assert!(price.source.starts_with("https://aws.amazon.com/"), "{key}");
            let note = price.note.as_deref().unwrap_or_default();
            // Either unverified (and saying so) or naming what it was checked against.
            assert!(
                note.contains("not re-checked offline") || note.contains("matches "),
                "{}: {key}",
                book.id()
            );
        }
    }
    Ok(())
}

#[test]
fn the_2021_book_inherits_today_and_overrides_only_dynamodb() -> Result<(), CostError> {
    let then = cost::book("eu-west-2", Some("2021"))?;
    let today = cost::book("eu-west-2", Some("2026-11"))?;
    assert_eq!(then.inherits(), Some("eu-west-2-2026-11"));
    let moved: Vec<&str> = then
        .prices()
        .filter(|p| today.price(&p.key).map(|t| t.usd) != Ok(p.usd))
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(moved, ["dynamodb.read_request_unit", "dynamodb.write_request_unit"]);
    assert_eq!(then.price("lambda.request")?.file, "eu-west-2-2026-11.toml");
    assert_eq!(then.price("dynamodb.write_request_unit")?.file, "eu-west-2-2021.toml");
    Ok(())
}

#[test]
fn a_copy_of_a_built_in_file_parses_to_the_same_prices() -> Result<(), CostError> {
    let mine = PriceBook::parse(LONDON, "mine.toml")?;
    let builtin = cost::book("eu-west-2", None)?;
    assert!(mine.prices().map(|p| (&p.key, p.usd)).eq(builtin.prices().map(|p| (&p.key, p.usd))));
    Ok(())
}

#[test]
fn a_user_file_can_inherit_a_built_in_book_and_override_one_price() -> Result<(), CostError> {
    let text = r#"
region = "eu-west-2"
as_of = "2026-12"
currency = "USD"
inherits = "eu-west-2-2026-11"

[prices.lambda.request]
usd = 0.10
per = 1_000_000
unit = "request"
source = "https://aws.amazon.com/lambda/pricing/"
note = "a negotiated discount"
"#;
    let mine = PriceBook::parse(text, "discount.toml")?;
    assert_eq!(mine.id(), "eu-west-2-2026-12");
    assert_eq!(mine.price("lambda.request")?.usd, 0.10);
    assert_eq!(mine.price("apigw.http_request")?.usd, 1.16);
    Ok(())
}

#[test]
fn a_missing_price_names_the_file_and_the_key() {
    let text = LONDON.replace("[prices.dynamodb.write_request_unit]", "[prices.dynamodb.wru]");
    let err = parse_err(&text);
    assert!(
        err.contains("mine.toml") && err.contains("missing price `dynamodb.write_request_unit`"),
        "{err}"
    );
}

#[test]
fn a_negative_price_names_the_file_and_the_key() {
    let text = LONDON.replace("usd = 1.16", "usd = -1.16");
    let err = parse_err(&text);
    assert!(
        err.contains("mine.toml")
            && err.contains("`apigw.http_request`")
            && err.contains("positive and finite"),
        "{err}"
    );
}

#[test]
fn a_zero_infinite_or_nan_price_is_refused() {
    for bad in ["0.0", "inf", "nan"] {
        let err = parse_err(&LONDON.replace("usd = 1.16", &format!("usd = {bad}")));
        assert!(err.contains("`apigw.http_request`"), "{bad}: {err}");
    }
}

#[test]
fn a_spot_discount_of_100_percent_or_more_is_refused() {
    let err = parse_err(&LONDON.replace("usd = 0.70", "usd = 1.5"));
    assert!(err.contains("`fargate.spot_discount`") && err.contains("below 1"), "{err}");
}

#[test]
fn a_price_without_a_source_names_the_file_the_line_and_the_field() {
    let text = LONDON.replacen("source = \"https://aws.amazon.com/lambda/pricing/\"\n", "", 1);
    let err = parse_err(&text);
    assert!(err.contains("mine.toml") && err.contains("source") && err.contains("line"), "{err}");
}

#[test]
fn a_misspelt_field_is_an_error_not_ignored() {
    let text = LONDON.replacen("usd = 0.20", "usd = 0.20\nusdd = 0.30", 1);
    let err = parse_err(&text);
    assert!(err.contains("mine.toml") && err.contains("usdd"), "{err}");
}

#[test]
fn a_currency_other_than_usd_is_refused() {
    let err = parse_err(&LONDON.replace("currency = \"USD\"", "currency = \"GBP\""));
    assert!(err.contains("`currency`") && err.contains("GBP"), "{err}");
}

#[test]
fn inheriting_an_unknown_book_lists_the_built_in_ones() {
    let err = parse_err(
        "region = \"eu-west-2\"\nas_of = \"2030\"\ncurrency = \"USD\"\ninherits = \"eu-west-2-1999\"\n",
    );
    assert!(err.contains("eu-west-2-1999") && err.contains("eu-west-2-2026-11"), "{err}");
}

#[test]
fn text_that_is_not_toml_names_the_file() {
    let err = parse_err("region = ");
    assert!(err.starts_with("mine.toml: "), "{err}");
}

#[test]
fn a_profile_using_an_unknown_price_key_names_the_profile_the_key_and_the_book() -> Result<(), CostError> {
    let profiles = parse_profiles(
        r#"
[[profile]]
id = "typo"
label = "A typo"
per_call = [{ item = "HTTP API request", price = "apigw.htp_request" }]
"#,
        "mine-profiles.toml",
    )?;
    let london = cost::book("eu-west-2", None)?;
    let Some(typo) = profiles.first() else {
        return Err(CostError::Parse { file: "test".into(), message: "no profile parsed".into() });
    };
    let check = london.check_profile(typo).map_err(|e| e.to_string());
    let run = estimate(typo, london, &cost::Params::default()).map_err(|e| e.to_string());
    for result in [check.map(|_| ()), run.map(|_| ())] {
        let Err(err) = result else {
            return Err(CostError::Parse {
                file: "test".into(),
                message: "the unknown key went unnoticed".into(),
            });
        };
        assert!(
            err.contains("`typo`")
                && err.contains("`apigw.htp_request`")
                && err.contains("eu-west-2-2026-11.toml"),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn malformed_profiles_are_errors_naming_the_file_and_profile() {
    for (text, expect) in [
        (
            "[[profile]]\nid = \"a\"\nlabel = \"A\"\nlambda = { arch = \"arm64\", memory_mb = 64, duration_ms = 1 }\n",
            "memory_mb",
        ),
        (
            "[[profile]]\nid = \"a\"\nlabel = \"A\"\nper_call = [{ item = \"x\", price = \"firehose.gb_ingested\", record = \"firehose\" }]\n",
            "event_bytes",
        ),
        (
            "[[profile]]\nid = \"a\"\nlabel = \"A\"\nmonthly = [{ item = \"x\", price = \"elb.alb_hour\", quantity = -1 }]\n",
            "quantity",
        ),
        (
            "[[profile]]\nid = \"a\"\nlabel = \"A\"\nmonthly = [{ item = \"x\", price = \"elb.alb_hour\" }]\n[[profile]]\nid = \"a\"\nlabel = \"B\"\nmonthly = [{ item = \"x\", price = \"elb.alb_hour\" }]\n",
            "used twice",
        ),
        (
            "[[profile]]\nid = \"a\"\nlabel = \"A\"\nlambda = { arch = \"mips\", memory_mb = 128, duration_ms = 1 }\n",
            "mips",
        ),
    ] {
        let err = match parse_profiles(text, "mine-profiles.toml") {
            Ok(_) => String::from("parsed"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("mine-profiles.toml") && err.contains(expect), "{expect}: {err}");
    }
}
