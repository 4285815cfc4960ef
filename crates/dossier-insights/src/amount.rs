//! Exact money arithmetic for the insights: amounts in ten-thousandths of a
//! currency unit (the domain's `Money` has at most 4 decimals) and exchange rates.

use std::fmt;

use dossier_domain::Money;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places of an [`Amount`].
const SCALE: u32 = 4;
const UNIT: i128 = 10_000;

/// An exact amount in ten-thousandths of a currency unit. Sums saturate
/// instead of overflowing (only adversarial logs get near `i128`).
///
/// Serialized as its canonical decimal string ("12345.5", "0", "-0.25"), so a
/// JSON reader never sees a float and PostgreSQL `jsonb` keeps it exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i128);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn from_ten_thousandths(units: i128) -> Amount {
        Amount(units)
    }

    pub fn ten_thousandths(self) -> i128 {
        self.0
    }

    pub fn from_money(m: &Money) -> Amount {
        // scale() is 0..=4, so the factor is exact; the magnitude is < 10^19.
        Amount(
            m.minor_units()
                .saturating_mul(10i128.pow(SCALE - m.scale())),
        )
    }

    /// A decimal like "1000000", "7.1" or "-0.0001" (at most 4 decimals,
    /// at most 30 digits before the point).
    pub fn parse(s: &str) -> Option<Amount> {
        let (units, scale) = parse_decimal(s, SCALE, 30)?;
        Some(Amount(units * 10i128.pow(SCALE - scale)))
    }

    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / UNIT as u128;
        let mut frac = abs % UNIT as u128;
        if frac == 0 {
            return write!(f, "{sign}{int}");
        }
        let mut width = SCALE as usize;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{sign}{int}.{frac:0width$}")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let s = String::deserialize(d)?;
        Amount::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a decimal amount: {s:?}")))
    }
}

/// How many units of the base currency one unit of a currency is worth:
/// a positive decimal with at most 8 decimals, kept exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    units: i128,
    scale: u32,
}

impl Rate {
    pub const ONE: Rate = Rate { units: 1, scale: 0 };

    /// A positive decimal like "7.1" or "0.052" (at most 8 decimals, 12 digits before the point).
    pub fn parse(s: &str) -> Option<Rate> {
        let (mut units, mut scale) = parse_decimal(s, 8, 12)?;
        // Canonical form, so that equal rates compare equal ("1.0" == "1").
        while scale > 0 && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        (units > 0).then_some(Rate { units, scale })
    }

    /// `amount * rate`, rounded half away from zero to ten-thousandths.
    pub fn convert(self, amount: Amount) -> Amount {
        let divisor = 10i128.pow(self.scale);
        let Some(product) = amount.0.checked_mul(self.units) else {
            return Amount(if amount.0 < 0 { i128::MIN } else { i128::MAX });
        };
        let q = product / divisor;
        let r = product % divisor;
        let rounded = if r.abs() * 2 >= divisor {
            q + product.signum()
        } else {
            q
        };
        Amount(rounded)
    }
}

/// Parses an optionally negative decimal with at most `max_scale` decimals and
/// `max_int` integer digits into (units, scale). No exponent, no '+'.
fn parse_decimal(s: &str, max_scale: u32, max_int: usize) -> Option<(i128, u32)> {
    let s = s.trim();
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > max_int
        || frac.len() > max_scale as usize
        || (body.contains('.') && frac.is_empty())
        || !digits(int)
        || !digits(frac)
    {
        return None;
    }
    let magnitude: i128 = format!("{int}{frac}").parse().ok()?;
    Some((
        if negative { -magnitude } else { magnitude },
        frac.len() as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_canonically_and_parse_back() {
        for (text, units) in [
            ("0", 0),
            ("12345.5", 123_455_000),
            ("-0.0001", -1),
            ("1000000", 10_000_000_000),
        ] {
            let a = Amount::parse(text).unwrap();
            assert_eq!(a.ten_thousandths(), units);
            assert_eq!(a.to_string(), text);
        }
        assert_eq!(Amount::parse("1.50").unwrap().to_string(), "1.5");
        for bad in ["", "1.", ".5", "1e3", "+1", "1.00001", "abc"] {
            assert_eq!(Amount::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn money_converts_exactly() {
        let m = Money::parse("100.5", "USD").unwrap();
        assert_eq!(Amount::from_money(&m).to_string(), "100.5");
    }

    #[test]
    fn rates_convert_with_half_away_from_zero_rounding() {
        let r = Rate::parse("7.1").unwrap();
        assert_eq!(r.convert(Amount::parse("100").unwrap()).to_string(), "710");
        // 0.0001 * 0.5 = 0.00005 -> rounds up to 0.0001.
        let half = Rate::parse("0.5").unwrap();
        assert_eq!(
            half.convert(Amount::parse("0.0001").unwrap()).to_string(),
            "0.0001"
        );
        assert_eq!(
            half.convert(Amount::parse("-0.0001").unwrap()).to_string(),
            "-0.0001"
        );
        let third = Rate::parse("0.33333333").unwrap();
        assert_eq!(third.convert(Amount::parse("3").unwrap()).to_string(), "1");
        assert_eq!(Rate::parse("0"), None);
        assert_eq!(Rate::parse("-1"), None);
    }
}
