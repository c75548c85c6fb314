//! Policer parameters in tc `police` terms (an average rate with a burst,
//! and an optional peak rate) and tc's rate and size syntax (`100mbit`,
//! `64kb`). `xvs_dataplane::policy::qos` runs the token buckets.

use std::fmt;

/// Nanobytes per byte: buckets count in bytes × 10⁹ (the dataplane's
/// policer explains why), so capacities are computed here in that unit.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Default maximum frame size for the peak bucket (jumbo frames; tc's own
/// default is the device MTU).
pub const DEFAULT_MTU: u32 = 9000;

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
    pub fn committed_cap(&self) -> u64 {
        self.burst_bytes.saturating_mul(NANOS_PER_SEC)
    }

    pub fn peak_cap(&self) -> u64 {
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
