//! Reconnect delays: exponential backoff with full jitter.
//!
//! Attempt `n` (from 0) waits a uniformly random time in `[0, min(cap, base × 2ⁿ))`, so
//! a thousand widgets that lost the same server don't come back in lock-step. A stream that
//! stays healthy for 10 s resets the count.

use std::time::Duration;

/// Backoff state for one connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The first ceiling (0.5 s).
    pub base: Duration,
    /// The largest ceiling (30 s).
    pub cap: Duration,
    /// How long a stream must stay up before the count resets (10 s).
    pub healthy_after: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(10),
            attempt: 0,
        }
    }
}

impl Backoff {
    /// The same, with a lower (or higher) largest ceiling.
    pub fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Failed attempts since the last healthy stream.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the next delay: `min(cap, base × 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u64 << self.attempt.min(20);
        let ms = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.cap)
    }

    /// The next delay for a uniform random `unit` in `[0, 1)` (full jitter); counts the attempt.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling().as_nanos() as u64;
        self.attempt = self.attempt.saturating_add(1);
        // Whole nanoseconds, strictly below the ceiling (floating point could round up to it).
        let nanos = (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64;
        Duration::from_nanos(nanos.min(ceiling.saturating_sub(1)))
    }

    /// The stream has been up for `up`: a healthy stream resets the count.
    pub fn stream_up_for(&mut self, up: Duration) {
        if up >= self.healthy_after {
            self.attempt = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_from_half_a_second_to_thirty() {
        let mut b = Backoff::default();
        let ceilings: Vec<f64> = (0..9)
            .map(|_| {
                let c = b.ceiling().as_secs_f64();
                b.next_delay(0.5);
                c
            })
            .collect();
        assert_eq!(ceilings, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(b.attempt(), 9);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_ceiling() {
        for unit in [0.0, 0.25, 0.999_999, 1.0, -3.0, 7.0] {
            let mut b = Backoff::default();
            for _ in 0..4 {
                b.next_delay(0.5);
            }
            let ceiling = b.ceiling();
            let d = b.next_delay(unit);
            assert!(d < ceiling, "{unit}: {d:?} < {ceiling:?}");
        }
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), Duration::ZERO);
        assert_eq!(
            b.next_delay(0.5),
            Duration::from_millis(500),
            "half of the second ceiling (1 s)"
        );
    }

    #[test]
    fn ten_healthy_seconds_reset_the_count_and_less_does_not() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(0.5);
        }
        b.stream_up_for(Duration::from_millis(9_999));
        assert_eq!(b.attempt(), 5);
        b.stream_up_for(Duration::from_secs(10));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn a_lower_cap_stops_the_doubling_there() {
        let mut b = Backoff::default().with_cap(Duration::from_secs(10));
        for _ in 0..6 {
            b.next_delay(0.5);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(10));
        assert!(b.next_delay(0.999) < Duration::from_secs(10));
    }

    #[test]
    fn a_very_long_outage_does_not_overflow() {
        let mut b = Backoff::default();
        for _ in 0..10_000 {
            b.next_delay(0.9);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }
}
