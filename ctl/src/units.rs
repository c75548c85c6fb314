//! Human units for policers, both ways: `100mbit` and `64kb` in, the same
//! out. Parsing is the dataplane's (`policy::qos`, tc's units: rates in
//! decimal multiples of bits per second, sizes in binary multiples of
//! bytes), so xvsctl and a config file read a unit the same way; this
//! module adds the inverse, for display.

pub use xvs_types::qos::{parse_rate, parse_size, QosError};

const RATE_UNITS: [(u64, &str); 4] = [
    (1_000_000_000_000, "tbit"),
    (1_000_000_000, "gbit"),
    (1_000_000, "mbit"),
    (1_000, "kbit"),
];

const SIZE_UNITS: [(u64, &str); 3] = [(1 << 30, "gb"), (1 << 20, "mb"), (1 << 10, "kb")];

/// A rate in bits per second in the largest unit that keeps it exact:
/// `100mbit`, `1500kbit`, `12bit`. [`parse_rate`] reads it back exactly.
pub fn format_rate(bps: u64) -> String {
    for (m, u) in RATE_UNITS {
        if bps != 0 && bps % m == 0 {
            return format!("{}{u}", bps / m);
        }
    }
    format!("{bps}bit")
}

/// A size in bytes in the largest binary unit that keeps it exact: `64kb`,
/// `1500b`. [`parse_size`] reads it back exactly (up to `u64::MAX / 8`
/// bytes, the most it parses: it counts in bits).
pub fn format_size(bytes: u64) -> String {
    for (m, u) in SIZE_UNITS {
        if bytes != 0 && bytes % m == 0 {
            return format!("{}{u}", bytes / m);
        }
    }
    format!("{bytes}b")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_units_of_the_issue() {
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10kbit"), Ok(10_000));
        assert_eq!(parse_size("64kb"), Ok(65_536));
        assert_eq!(parse_size("1500b"), Ok(1500));
        assert_eq!(format_rate(100_000_000), "100mbit");
        assert_eq!(format_rate(1_500_000), "1500kbit");
        assert_eq!(format_rate(0), "0bit");
        assert_eq!(format_size(65_536), "64kb");
        assert_eq!(format_size(1500), "1500b");
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("100mbits")
            .unwrap_err()
            .to_string()
            .contains("mbits"));
        assert!(parse_size("99999999999999999999gb").is_err());
    }

    proptest! {
        #[test]
        fn rates_round_trip(bps in any::<u64>()) {
            prop_assert_eq!(parse_rate(&format_rate(bps)), Ok(bps));
        }

        #[test]
        fn sizes_round_trip(bytes in 0..=u64::MAX / 8) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn rate_units_scale(n in 0u64..1_000_000, i in 0usize..5, upper in any::<bool>()) {
            let (m, u) = [(1u64, "bit"), (1_000, "kbit"), (1_000_000, "mbit"), (1_000_000_000, "gbit"), (1_000_000_000_000, "tbit")][i];
            let u = if upper { u.to_uppercase() } else { u.to_string() };
            prop_assert_eq!(parse_rate(&format!("{n}{u}")), Ok(n * m));
        }

        #[test]
        fn size_units_scale(n in 0u64..1_000_000, i in 0usize..4) {
            let (m, u) = [(1u64, "b"), (1 << 10, "kb"), (1 << 20, "mb"), (1 << 30, "gb")][i];
            prop_assert_eq!(parse_size(&format!("{n}{u}")), Ok(n * m));
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,24}") {
            let _ = parse_rate(&s);
            let _ = parse_size(&s);
        }
    }
}
