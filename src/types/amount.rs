//! Amounts in base units: 1 coin = 100 000 000 units.

use std::fmt;
use std::str::FromStr;

/// Base units per coin.
pub const COIN: u64 = 100_000_000;

/// An amount of money in base units. Arithmetic is checked: it never wraps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Amount(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("`{0}` is not an amount: write coins as digits with at most 8 decimals, like 12.5 or 0.00000001")]
    Malformed(String),
    #[error("`{0}` is too large an amount")]
    TooLarge(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub const fn from_units(units: u64) -> Amount {
        Amount(units)
    }

    pub const fn units(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Sums amounts, or `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(items: I) -> Option<Amount> {
        items.into_iter().try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
    }

    /// Parses the coin text form `^[0-9]+(\.[0-9]{1,8})?$`.
    pub fn parse_coins(text: &str) -> Result<Amount, AmountParseError> {
        let malformed = || AmountParseError::Malformed(text.chars().take(40).collect());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let frac_units = match frac {
            None => 0,
            Some(f) => {
                if f.is_empty() || f.len() > 8 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed());
                }
                let mut digits = f.to_string();
                while digits.len() < 8 {
                    digits.push('0');
                }
                digits.parse::<u64>().map_err(|_| malformed())?
            }
        };
        let too_large = || AmountParseError::TooLarge(text.chars().take(40).collect());
        let whole_units: u64 = whole
            .trim_start_matches('0')
            .parse::<u64>()
            .or_else(|e| if whole.trim_start_matches('0').is_empty() { Ok(0) } else { Err(e) })
            .map_err(|_| too_large())?;
        whole_units.checked_mul(COIN).and_then(|u| u.checked_add(frac_units)).map(Amount).ok_or_else(too_large)
    }

    /// The coin text form with trailing zeros of the fraction dropped (`12.5`, `1`).
    pub fn to_coins_string(self) -> String {
        let whole = self.0 / COIN;
        let frac = self.0 % COIN;
        if frac == 0 {
            whole.to_string()
        } else {
            let digits = format!("{frac:08}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl FromStr for Amount {
    type Err = AmountParseError;
    fn from_str(s: &str) -> Result<Amount, AmountParseError> {
        Amount::parse_coins(s)
    }
}

/// Prints as coins with the unit, for people: `12.5 OUR`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} OUR", self.to_coins_string())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(Amount::parse_coins("12.5"), Ok(Amount(1_250_000_000)));
        assert_eq!(Amount::parse_coins("0.00000001"), Ok(Amount(1)));
        assert_eq!(Amount::parse_coins("0"), Ok(Amount(0)));
        assert_eq!(Amount::parse_coins("007"), Ok(Amount(7 * COIN)));
        assert_eq!(Amount::parse_coins("184467440737.09551615"), Ok(Amount(u64::MAX)));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [".5", "1e3", "-1", "1.123456789", "", "1.", "+1", " 1", "1 ", "1,5", "0x10", "1.2.3", "٣"] {
            assert!(
                matches!(Amount::parse_coins(bad), Err(AmountParseError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        assert!(matches!(Amount::parse_coins("184467440737.09551616"), Err(AmountParseError::TooLarge(_))));
        assert!(matches!(Amount::parse_coins("99999999999999999999999"), Err(AmountParseError::TooLarge(_))));
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(Amount(1_250_000_000).to_string(), "12.5 OUR");
        assert_eq!(Amount(1).to_coins_string(), "0.00000001");
        assert_eq!(Amount(5 * COIN).to_coins_string(), "5");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(0).checked_sub(Amount(1)), None);
        assert_eq!(Amount::checked_sum([Amount(u64::MAX), Amount(1)]), None);
        assert_eq!(Amount::checked_sum([Amount(2), Amount(3)]), Some(Amount(5)));
    }

    proptest! {
        #[test]
        fn text_round_trips(units in any::<u64>()) {
            let a = Amount(units);
            prop_assert_eq!(Amount::parse_coins(&a.to_coins_string()), Ok(a));
        }
    }
}
