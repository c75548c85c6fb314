//! Policers with tc `police` semantics, as LSDN uses them: an average rate
//! with a burst, and an optional peak rate.
//!
//! Two token buckets:
//! - committed: fills at `rate_bytes_per_sec`, holds at most `burst_bytes`;
//! - peak (only with a peak rate): fills at `peak_bytes_per_sec`, holds at
//!   most one maximum-size frame (`mtu` bytes), which is what bounds the
//!   instantaneous rate, as tc does.
//!
//! A packet conforms only if both buckets hold its size, and then takes it
//! from both; a packet that does not conform takes nothing.
//!
//! Who writes, who reads: [`PolicerConfig`] is validated and built by the
//! control plane and published in a snapshot; [`PolicerState`] belongs to one
//! worker (a per-worker policer enforces rate/N on each of N workers if the
//! control plane splits the rate; that split is the control plane's choice).
//!
//! Arithmetic is integer only and exact. Tokens are kept in "nanobytes"
//! (bytes × 10⁹), so a refill of `elapsed_ns × rate_bytes_per_sec` is
//! exactly the bytes earned, with no remainder to carry. The per-packet
//! path is all `u64`; only the refill (once per batch) uses `u128`. Why
//! nothing overflows:
//! - a bucket holds at most `MAX_BURST_BYTES × 10⁹ = 10¹⁹ < 2⁶⁴` (bursts
//!   above 10 GB are refused by validation; `mtu` is a `u32`, so
//!   `mtu × 10⁹ < 2³² × 2³⁰ = 2⁶²`);
//! - a packet costs `bytes × 10⁹ < 2⁶²` for any `u32` length;
//! - a refill computes `elapsed_ns × rate`, two `u64`s, in `u128` (their
//!   product is below `2¹²⁸`), adds the bucket, clamps to its capacity and
//!   only then narrows to `u64`. So no cap on the elapsed time is needed
//!   (Firecracker's rate limiter needs one; we do not).
//!
//! Time is the caller's `now` in nanoseconds. If it goes backwards the
//! bucket is not refilled and the high-water mark of `now` is kept, so a
//! clock that jumps back and forth can never earn tokens twice for the same
//! interval (the cost: no refill until time passes the mark again).

use std::fmt;

/// Default maximum frame size for the peak bucket (jumbo frames; tc's own
/// default is the device MTU).
pub const DEFAULT_MTU: u32 = 9000;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Largest burst a policer may have (10 GB), which keeps buckets in `u64`
/// nanobytes (see the module doc).
pub const MAX_BURST_BYTES: u64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QosError {
    #[error("policer rate is 0 bytes/s: a policer that passes nothing is a drop rule")]
    ZeroRate,
    #[error("policer mtu is 0 bytes")]
    ZeroMtu,
    #[error(
        "policer burst {burst} bytes is smaller than mtu {mtu} bytes: frames near the mtu \
         could never conform (raise the burst or lower the mtu)"
    )]
    BurstBelowMtu { burst: u64, mtu: u32 },
    #[error("policer burst {0} bytes is larger than the maximum {MAX_BURST_BYTES} bytes")]
    BurstTooLarge(u64),
    #[error("policer peak rate {peak} bytes/s is below the average rate {rate} bytes/s")]
    PeakBelowRate { peak: u64, rate: u64 },
    #[error("bad number in {input:?}: expected digits with an optional fraction and unit")]
    BadNumber { input: String },
    #[error("unknown unit {unit:?} in {input:?}")]
    UnknownUnit { input: String, unit: String },
    #[error("{input:?} is too large")]
    TooLarge { input: String },
}

/// One policer's parameters. Validate with [`PolicerConfig::validate`] (or
/// build with [`PolicerConfig::new`]) before publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicerConfig {
    pub rate_bytes_per_sec: u64,
    pub burst_bytes: u64,
    pub peak_bytes_per_sec: Option<u64>,
    /// Depth of the peak bucket, and the largest frame that can conform.
    pub mtu: u32,
}

impl PolicerConfig {
    /// Average rate and burst, no peak rate, [`DEFAULT_MTU`].
    pub fn new(rate_bytes_per_sec: u64, burst_bytes: u64) -> Result<PolicerConfig, QosError> {
        let c = PolicerConfig {
            rate_bytes_per_sec,
            burst_bytes,
            peak_bytes_per_sec: None,
            mtu: DEFAULT_MTU,
        };
        c.validate()?;
        Ok(c)
    }

    pub fn with_peak(mut self, peak_bytes_per_sec: u64) -> Result<PolicerConfig, QosError> {
        self.peak_bytes_per_sec = Some(peak_bytes_per_sec);
        self.validate()?;
        Ok(self)
    }

    pub fn with_mtu(mut self, mtu: u32) -> Result<PolicerConfig, QosError> {
        self.mtu = mtu;
        self.validate()?;
        Ok(self)
    }

    /// From tc-style strings: `rate` and `peak` as in [`parse_rate`], `burst`
    /// and `mtu` as in [`parse_size`].
    pub fn from_tc(
        rate: &str,
        burst: &str,
        peak: Option<&str>,
        mtu: Option<&str>,
    ) -> Result<PolicerConfig, QosError> {
        let size_u32 = |s: &str| {
            u32::try_from(parse_size(s)?).map_err(|_| QosError::TooLarge {
                input: s.to_string(),
            })
        };
        let c = PolicerConfig {
            rate_bytes_per_sec: parse_rate(rate)? / 8,
            burst_bytes: parse_size(burst)?,
            peak_bytes_per_sec: peak.map(|p| parse_rate(p).map(|b| b / 8)).transpose()?,
            mtu: mtu.map(size_u32).transpose()?.unwrap_or(DEFAULT_MTU),
        };
        c.validate()?;
        Ok(c)
    }

    /// Rejects a zero rate or mtu, a burst below the mtu (frames of mtu size
    /// would never conform: tc only warns, we refuse, since the result is a
    /// silent black hole for large frames), and a peak below the rate.
    pub fn validate(&self) -> Result<(), QosError> {
        if self.rate_bytes_per_sec == 0 {
            return Err(QosError::ZeroRate);
        }
        if self.mtu == 0 {
            return Err(QosError::ZeroMtu);
        }
        if self.burst_bytes > MAX_BURST_BYTES {
            return Err(QosError::BurstTooLarge(self.burst_bytes));
        }
        if self.burst_bytes < u64::from(self.mtu) {
            return Err(QosError::BurstBelowMtu {
                burst: self.burst_bytes,
                mtu: self.mtu,
            });
        }
        if let Some(peak) = self.peak_bytes_per_sec {
            if peak < self.rate_bytes_per_sec {
                return Err(QosError::PeakBelowRate {
                    peak,
                    rate: self.rate_bytes_per_sec,
                });
            }
        }
        Ok(())
    }

    /// Bucket capacities in nanobytes; saturating only matters for a config
    /// that skipped validation.
    fn committed_cap(&self) -> u64 {
        self.burst_bytes.saturating_mul(NANOS_PER_SEC)
    }

    fn peak_cap(&self) -> u64 {
        u64::from(self.mtu).saturating_mul(NANOS_PER_SEC)
    }
}

impl fmt::Display for PolicerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate {}bps burst {}b",
            self.rate_bytes_per_sec, self.burst_bytes
        )?;
        if let Some(p) = self.peak_bytes_per_sec {
            write!(f, " peakrate {p}bps")?;
        }
        write!(f, " mtu {}b", self.mtu)
    }
}

/// One worker's buckets for one policer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicerState {
    /// Nanobytes in the committed bucket.
    committed: u64,
    /// Nanobytes in the peak bucket (unused without a peak rate).
    peak: u64,
    /// Latest `now` seen: refills are measured from here.
    last: u64,
    /// The caps in nanobytes and the (burst, mtu) they were computed from:
    /// recomputed only when a different config is passed, which keeps two
    /// 128-bit multiplications off the per-packet path.
    caps: (u64, u64),
    caps_of: (u64, u32),
}

impl PolicerState {
    /// Full buckets at `now`, as tc starts.
    pub fn new(cfg: &PolicerConfig, now: u64) -> PolicerState {
        PolicerState {
            committed: cfg.committed_cap(),
            peak: cfg.peak_cap(),
            last: now,
            caps: (cfg.committed_cap(), cfg.peak_cap()),
            caps_of: (cfg.burst_bytes, cfg.mtu),
        }
    }

    /// Whether a packet of `bytes` conforms at `now`; if it does, its size
    /// is taken from both buckets, otherwise nothing is taken.
    #[inline]
    pub fn conform(&mut self, cfg: &PolicerConfig, now: u64, bytes: u32) -> bool {
        // A worker passes one `now` per batch: refill once per batch, not
        // per packet.
        if now > self.last {
            self.refill(cfg, now);
        }
        // Clamp even without a refill: a config swapped in with a smaller
        // burst or mtu takes effect at once.
        if self.caps_of != (cfg.burst_bytes, cfg.mtu) {
            self.caps = (cfg.committed_cap(), cfg.peak_cap());
            self.caps_of = (cfg.burst_bytes, cfg.mtu);
        }
        self.committed = self.committed.min(self.caps.0);
        self.peak = self.peak.min(self.caps.1);
        let cost = u64::from(bytes) * NANOS_PER_SEC;
        if cost > self.committed {
            return false;
        }
        if cfg.peak_bytes_per_sec.is_some() {
            if cost > self.peak {
                return false;
            }
            self.peak -= cost;
        }
        self.committed -= cost;
        true
    }

    /// Adds what `now - last` earned. A clock that goes backwards refills
    /// nothing (the caller only calls with `now > last`, and `last` stays the
    /// latest time seen).
    fn refill(&mut self, cfg: &PolicerConfig, now: u64) {
        let elapsed = u128::from(now - self.last);
        // Products of two u64 always fit in u128; clamping to the cap
        // (a u64) before narrowing makes the conversion lossless.
        let fill = |tokens: u64, rate: u64, cap: u64| {
            let t = u128::from(tokens) + elapsed * u128::from(rate);
            t.min(u128::from(cap)) as u64
        };
        self.committed = fill(self.committed, cfg.rate_bytes_per_sec, cfg.committed_cap());
        if let Some(p) = cfg.peak_bytes_per_sec {
            self.peak = fill(self.peak, p, cfg.peak_cap());
        }
        self.last = now;
    }

    /// Whole bytes currently in the committed bucket (for stats and tests).
    pub fn committed_bytes(&self) -> u64 {
        self.committed / NANOS_PER_SEC
    }
}

/// Splits `s` into a decimal number (digits, optional `.digits`) and the
/// unit that follows, and returns `floor(number × scale)`.
fn scaled(s: &str, unit_scale: impl Fn(&str) -> Option<u128>) -> Result<u64, QosError> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let bad = || QosError::BadNumber {
        input: s.to_string(),
    };
    let too_large = || QosError::TooLarge {
        input: s.to_string(),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if frac.contains('.') || frac.len() > 18 {
        return Err(bad());
    }
    let scale = unit_scale(&unit.to_ascii_lowercase()).ok_or_else(|| QosError::UnknownUnit {
        input: s.to_string(),
        unit: unit.to_string(),
    })?;
    let parse = |d: &str| -> Result<u128, QosError> {
        if d.is_empty() {
            Ok(0)
        } else {
            d.parse::<u128>().map_err(|_| too_large())
        }
    };
    let int_v = parse(int)?;
    let frac_v = parse(frac)?;
    let frac_div = 10u128.pow(frac.len() as u32);
    let whole = int_v.checked_mul(scale).ok_or_else(too_large)?;
    // frac_v < 10^18 and scale <= 8e12, so this product fits easily.
    let part = frac_v * scale / frac_div;
    let v = whole.checked_add(part).ok_or_else(too_large)?;
    u64::try_from(v).map_err(|_| too_large())
}

/// A tc rate in bits per second: `100mbit`, `1.5gbit`, `64kbps` (bytes),
/// `10mibit`. A bare number is bits per second. Units are case-insensitive
/// and decimal (k = 1000) unless binary (`kibit`, `kibps`, ...), as in tc.
pub fn parse_rate(s: &str) -> Result<u64, QosError> {
    scaled(s, |u| {
        const K: u128 = 1000;
        const KI: u128 = 1024;
        Some(match u {
            "" | "bit" => 1,
            "kbit" => K,
            "mbit" => K * K,
            "gbit" => K * K * K,
            "tbit" => K * K * K * K,
            "kibit" => KI,
            "mibit" => KI * KI,
            "gibit" => KI * KI * KI,
            "tibit" => KI * KI * KI * KI,
            "bps" => 8,
            "kbps" => 8 * K,
            "mbps" => 8 * K * K,
            "gbps" => 8 * K * K * K,
            "tbps" => 8 * K * K * K * K,
            "kibps" => 8 * KI,
            "mibps" => 8 * KI * KI,
            "gibps" => 8 * KI * KI * KI,
            "tibps" => 8 * KI * KI * KI * KI,
            _ => return None,
        })
    })
}

/// A tc size in bytes: `64kb`, `1m`, `1500b`, `512kbit`. A bare number is
/// bytes. As in tc, size units are binary (k = 1024); `kbit`-style units are
/// sizes in bits.
pub fn parse_size(s: &str) -> Result<u64, QosError> {
    let v = scaled(s, |u| {
        const KI: u128 = 1024;
        // Scaled by 8 so that bit units stay integral; divided below.
        Some(match u {
            "" | "b" => 8,
            "k" | "kb" => 8 * KI,
            "m" | "mb" => 8 * KI * KI,
            "g" | "gb" => 8 * KI * KI * KI,
            "kbit" => KI,
            "mbit" => KI * KI,
            "gbit" => KI * KI * KI,
            _ => return None,
        })
    })?;
    Ok(v / 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn units() {
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("100MBit"), Ok(100_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64kbps"), Ok(512_000));
        assert_eq!(parse_rate("10bps"), Ok(80));
        assert_eq!(parse_rate("1kibit"), Ok(1024));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_size("64kb"), Ok(65_536));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1500b"), Ok(1500));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("8kbit"), Ok(1024));
        assert_eq!(parse_size("0.5kb"), Ok(512));

        let e = parse_rate("100mbits").unwrap_err();
        assert!(e.to_string().contains("mbits") && e.to_string().contains("100mbits"));
        assert!(matches!(
            parse_rate("fast"),
            Err(QosError::BadNumber { .. })
        ));
        assert!(matches!(
            parse_rate("1.2.3mbit"),
            Err(QosError::BadNumber { .. })
        ));
        assert!(matches!(parse_rate(""), Err(QosError::BadNumber { .. })));
        assert!(matches!(
            parse_rate("99999999999tbit"),
            Err(QosError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_size("1xb"),
            Err(QosError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn validation() {
        assert_eq!(PolicerConfig::new(0, 10_000), Err(QosError::ZeroRate));
        assert_eq!(
            PolicerConfig::new(1000, 1500),
            Err(QosError::BurstBelowMtu {
                burst: 1500,
                mtu: DEFAULT_MTU
            })
        );
        let c = PolicerConfig::new(1000, 10_000).unwrap();
        assert!(c.with_mtu(1500).is_ok());
        assert_eq!(c.with_mtu(0), Err(QosError::ZeroMtu));
        assert_eq!(
            c.with_peak(999),
            Err(QosError::PeakBelowRate {
                peak: 999,
                rate: 1000
            })
        );
        let t = PolicerConfig::from_tc("8mbit", "64kb", Some("16mbit"), Some("1500")).unwrap();
        assert_eq!(t.rate_bytes_per_sec, 1_000_000);
        assert_eq!(t.burst_bytes, 65_536);
        assert_eq!(t.peak_bytes_per_sec, Some(2_000_000));
        assert_eq!(t.mtu, 1500);
        assert!(PolicerConfig::from_tc("8mbit", "64kb", None, Some("8gb")).is_err());
    }

    #[test]
    fn burst_then_rate() {
        let cfg = PolicerConfig::new(1_000_000, 10_000)
            .unwrap()
            .with_mtu(1000)
            .unwrap();
        let mut st = PolicerState::new(&cfg, 0);
        for _ in 0..10 {
            assert!(st.conform(&cfg, 0, 1000));
        }
        assert!(!st.conform(&cfg, 0, 1000));
        // A non-conforming packet took nothing: a smaller one still fits
        // after 500 µs (500 bytes earned).
        assert!(!st.conform(&cfg, 400_000, 500));
        assert!(st.conform(&cfg, 500_000, 500));
        assert_eq!(st.committed_bytes(), 0);
        // Idle for an hour refills only up to the burst.
        assert!(st.conform(&cfg, 3600 * SEC, 1));
        assert_eq!(st.committed_bytes(), 9_999);
    }

    #[test]
    fn long_run_rate_within_one_percent() {
        let rate = 1_250_000; // 10 Mbit/s
        let cfg = PolicerConfig::new(rate, 15_000)
            .unwrap()
            .with_mtu(1500)
            .unwrap();
        let mut st = PolicerState::new(&cfg, 0);
        // Offer 10x the rate in 1500-byte frames for 10 simulated seconds,
        // with an odd inter-arrival time so arrivals drift against refills.
        let mut passed = 0u64;
        let mut now = 0u64;
        while now < 10 * SEC {
            if st.conform(&cfg, now, 1500) {
                passed += 1500;
            }
            now += 120_001;
        }
        let expected = rate * 10 + 15_000;
        let err = passed.abs_diff(expected) as f64 / expected as f64;
        assert!(err < 0.01, "passed {passed}, expected {expected}");
    }

    #[test]
    fn peak_rate_limits_back_to_back_frames() {
        // Large burst, but peak 2x the rate with a one-frame peak bucket.
        let cfg = PolicerConfig::new(1_000_000, 1_000_000)
            .unwrap()
            .with_mtu(1500)
            .unwrap()
            .with_peak(2_000_000)
            .unwrap();
        let mut st = PolicerState::new(&cfg, 0);
        assert!(st.conform(&cfg, 0, 1500));
        assert!(!st.conform(&cfg, 0, 1500));
        // At 2 MB/s, 1500 bytes take 750 µs.
        assert!(!st.conform(&cfg, 749_999, 1500));
        assert!(st.conform(&cfg, 750_000, 1500));
        // Over 0.1 s of saturation, about peak rate passes (the committed
        // bucket is deep enough not to interfere).
        let mut passed = 0u64;
        let mut now = 750_000;
        while now < 100_750_000 {
            now += 10_000;
            if st.conform(&cfg, now, 1500) {
                passed += 1500;
            }
        }
        let expected = 200_000;
        assert!(
            passed.abs_diff(expected) <= 3000,
            "passed {passed}, expected about {expected}"
        );
        // A frame above the mtu never conforms with a peak rate.
        assert!(!st.conform(&cfg, 10 * SEC, 1501));
    }

    #[test]
    fn clock_going_backwards_does_not_refill_or_panic() {
        let cfg = PolicerConfig::new(1_000_000, 10_000).unwrap();
        let mut st = PolicerState::new(&cfg, 5 * SEC);
        assert!(st.conform(&cfg, 5 * SEC, 10_000));
        assert!(!st.conform(&cfg, SEC, 1));
        assert!(!st.conform(&cfg, 0, 1));
        // Back to the mark: still nothing earned for the detour.
        assert!(!st.conform(&cfg, 5 * SEC, 1));
        assert!(st.conform(&cfg, 5 * SEC + 1000, 1));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let too_big = PolicerConfig {
            rate_bytes_per_sec: u64::MAX,
            burst_bytes: u64::MAX,
            peak_bytes_per_sec: Some(u64::MAX),
            mtu: u32::MAX,
        };
        assert_eq!(too_big.validate(), Err(QosError::BurstTooLarge(u64::MAX)));
        let cfg = PolicerConfig {
            burst_bytes: MAX_BURST_BYTES,
            ..too_big
        };
        cfg.validate().unwrap();
        let mut st = PolicerState::new(&cfg, 0);
        assert!(st.conform(&cfg, u64::MAX, u32::MAX));
        // The peak bucket holds one mtu-sized frame: the second must wait.
        assert!(!st.conform(&cfg, u64::MAX, u32::MAX));
        let slow = PolicerConfig::new(1, 9000).unwrap();
        let mut st = PolicerState::new(&slow, u64::MAX);
        assert!(st.conform(&slow, 0, 9000));
        assert!(!st.conform(&slow, u64::MAX, 1));
        // A swap to a smaller config clamps at once.
        let mut st = PolicerState::new(&cfg, 0);
        assert!(!st.conform(&slow, 0, 9001));
        assert!(st.conform(&slow, 0, 9000));
    }
}
