//! Numbers for people: money (`$3.09`, `$0.0335`), counts grouped by thousands (`1,000,000`),
//! quantities to a few significant digits without exponents, and the rounding the notes use.

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

/// `v` rounded to `decimals` decimal places.
pub(crate) fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// A number without trailing zeros: 16, 0.25, 5.5.
pub(crate) fn trim_number(v: f64) -> String {
    significant(v, 6, 0)
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
