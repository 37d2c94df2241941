//! Resource quantities (`k8s.io/apimachinery/pkg/api/resource.Quantity`):
//! parsing, exact arithmetic and canonical rendering.
//!
//! A [`Quantity`] holds its value exactly as a count of nano-units (10⁻⁹) in
//! an `i128`, which covers every value kube-apiserver accepts to nano
//! precision (up to 2⁶³·10⁹); finer fractions round up, as upstream rounds
//! to nano precision away from zero. The serialization format (binary `Ki`,
//! decimal `k`/`m` or exponent) is kept from the parsed text so that sums
//! render like upstream's `Add`, which keeps the first operand's format.

use std::fmt;

/// How a quantity is rendered (resource.Format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Powers of 1024: `Ki`, `Mi`, … `Ei`.
    BinarySI,
    /// Powers of 1000: `n`, `u`, `m`, ``, `k`, `M`, … `E`.
    DecimalSI,
    /// `e<exp>` with exp a multiple of 3.
    DecimalExponent,
}

/// An exact resource quantity.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    /// The value in nano-units.
    pub nanos: i128,
    /// The rendering format.
    pub format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Why a quantity did not parse (resource.ErrFormatWrong and friends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not `<sign><digits>[.<digits>]<suffix>`
    /// (upstream: "quantities must match the regular expression ...").
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The value does not fit.
    #[error("quantity is too large")]
    TooLarge,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Zero in decimal format.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// An integer count (`pods=2`).
    pub fn from_int(n: i64) -> Self {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSI,
        }
    }

    /// Parses `s` as resource.ParseQuantity does.
    ///
    /// Errors: [`QuantityError::Format`] for text that is no quantity,
    /// [`QuantityError::TooLarge`] for values beyond the representable range.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let s = s.trim();
        let (neg, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(QuantityError::Format);
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        // The value as digits × 10^exp10 × 2^exp2.
        let (exp10, exp2, format): (i32, u32, Format) = match suffix {
            "" => (0, 0, Format::DecimalSI),
            "n" => (-9, 0, Format::DecimalSI),
            "u" => (-6, 0, Format::DecimalSI),
            "m" => (-3, 0, Format::DecimalSI),
            "k" => (3, 0, Format::DecimalSI),
            "M" => (6, 0, Format::DecimalSI),
            "G" => (9, 0, Format::DecimalSI),
            "T" => (12, 0, Format::DecimalSI),
            "P" => (15, 0, Format::DecimalSI),
            "E" => (18, 0, Format::DecimalSI),
            "Ki" => (0, 10, Format::BinarySI),
            "Mi" => (0, 20, Format::BinarySI),
            "Gi" => (0, 30, Format::BinarySI),
            "Ti" => (0, 40, Format::BinarySI),
            "Pi" => (0, 50, Format::BinarySI),
            "Ei" => (0, 60, Format::BinarySI),
            e if e.starts_with(['e', 'E']) => {
                let n: i32 = e[1..].parse().map_err(|_| QuantityError::Format)?;
                if !(-40..=40).contains(&n) {
                    return Err(QuantityError::TooLarge);
                }
                (n, 0, Format::DecimalExponent)
            }
            _ => return Err(QuantityError::Format),
        };
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(QuantityError::TooLarge);
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError::Format)?
        };
        // nanos = mantissa × 10^(exp10 − frac_len + 9) × 2^exp2, rounded up.
        let shift = exp10 - frac_part.len() as i32 + 9;
        let mut v = mantissa
            .checked_mul(1i128 << exp2)
            .ok_or(QuantityError::TooLarge)?;
        if shift >= 0 {
            v = v
                .checked_mul(
                    10i128
                        .checked_pow(shift as u32)
                        .ok_or(QuantityError::TooLarge)?,
                )
                .ok_or(QuantityError::TooLarge)?;
        } else {
            let d = 10i128
                .checked_pow((-shift) as u32)
                .ok_or(QuantityError::TooLarge)?;
            v = (v + d - 1) / d;
        }
        if v > i128::from(i64::MAX) * NANO {
            return Err(QuantityError::TooLarge);
        }
        Ok(Quantity {
            nanos: if neg { -v } else { v },
            format,
        })
    }
}

/// The sum, in the left operand's format (Quantity.Add).
impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }
}

/// The difference, in the left operand's format (Quantity.Sub).
impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }
}

/// Renders canonically (Quantity.String): the largest suffix that keeps the
/// number an integer; binary quantities that are no whole multiple of 1024
/// fall back to decimal, as upstream does.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, v) = if self.nanos < 0 {
            ("-", -self.nanos)
        } else {
            ("", self.nanos)
        };
        if v == 0 {
            return f.write_str("0");
        }
        if self.format == Format::BinarySI && v % NANO == 0 {
            let whole = v / NANO;
            // Upstream renders binary values below 1024 in decimal form.
            if whole >= 1024 {
                let mut n = whole;
                let mut i = 0;
                while n % 1024 == 0 && i < 6 {
                    n /= 1024;
                    i += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i];
                return write!(f, "{sign}{n}{suffix}");
            }
        }
        // Decimal: exponent a multiple of 3 from -9 up, largest keeping an integer.
        let mut n = v;
        let mut exp = -9;
        while n % 1000 == 0 && exp < 18 {
            n /= 1000;
            exp += 3;
        }
        if self.format == Format::DecimalExponent {
            return if exp == 0 {
                write!(f, "{sign}{n}")
            } else {
                write!(f, "{sign}{n}e{exp}")
            };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{sign}{n}{suffix}")
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_and_renders_like_apimachinery() {
        // input -> canonical string
        let cases = [
            ("0", "0"),
            ("2", "2"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1.5", "1500m"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("1k", "1k"),
            ("2M", "2M"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("-250m", "-250m"),
            ("0.1n", "1n"),
            ("+3", "3"),
            ("1Ei", "1Ei"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "1Qi", "m", "1 k", "1e"] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Format), "{bad:?}");
        }
    }

    #[test]
    fn arithmetic_is_exact_and_keeps_the_first_format() {
        assert_eq!((q("100m") + q("0.2")).to_string(), "300m");
        assert_eq!((q("1Gi") + q("1Gi")).to_string(), "2Gi");
        assert_eq!(
            (q("1Gi") + q("1M")).nanos,
            (1i128 << 30) * NANO + 1_000_000 * NANO
        );
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1k"), q("1000"));
        assert_eq!((q("3") - q("1")).to_string(), "2");
        assert_eq!(Quantity::from_int(2), q("2"));
    }
}
