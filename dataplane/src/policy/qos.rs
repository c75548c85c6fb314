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

use xvs_types::qos::NANOS_PER_SEC;
pub use xvs_types::qos::{
    parse_rate, parse_size, PolicerConfig, QosError, DEFAULT_MTU, MAX_BURST_BYTES,
};

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
    /// Frames and bytes dropped (index 0) and passed (index 1) since made: indexed
    /// by the verdict, so counting takes no branch.
    pub frames: [u64; 2],
    pub bytes: [u64; 2],
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
            frames: [0; 2],
            bytes: [0; 2],
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
