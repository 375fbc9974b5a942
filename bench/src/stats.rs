//! Percentiles of measured durations.

use std::time::Duration;

/// p50 / p99 / p999 / max of a sample, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

/// The nearest-rank percentile `q` (0–1) of sorted `values`.
fn rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

/// Summarises `values` (any order).
pub fn summarize(values: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    Summary {
        count: ms.len(),
        p50: rank(&ms, 0.50),
        p99: rank(&ms, 0.99),
        p999: rank(&ms, 0.999),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

impl Summary {
    /// As JSON (milliseconds).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count, "p50_ms": self.p50, "p99_ms": self.p99,
            "p999_ms": self.p999, "max_ms": self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let s = summarize(&values);
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, 500.0);
        assert_eq!(s.p99, 990.0);
        assert_eq!(s.p999, 999.0);
        assert_eq!(s.max, 1000.0);
    }

    #[test]
    fn small_and_empty_samples() {
        assert_eq!(summarize(&[]), Summary::default());
        let one = summarize(&[Duration::from_micros(1500)]);
        assert_eq!((one.p50, one.p99, one.max), (1.5, 1.5, 1.5));
    }
}
