//! Per-user rate limiting of sends: a token bucket per user, so a burst of quick messages is
//! fine but a runaway client (or a retry storm) gets 429 with `Retry-After`.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use farm_chat_protocol::UserId;

/// A token bucket per user.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<UserId, (f64, Instant)>>,
}

impl RateLimiter {
    /// `burst` requests at once, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `user`, or says after how many whole seconds one is available.
    pub fn check(&self, user: &UserId) -> Result<(), u64> {
        self.check_at(user, Instant::now())
    }

    fn check_at(&self, user: &UserId, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: drop them so the map stays bounded.
            let burst = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(user.clone()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_it_refills_at_the_rate() {
        let limiter = RateLimiter::new(3, 2.0);
        let (u, t0) = (UserId("u".into()), Instant::now());
        assert!((0..3).all(|_| limiter.check_at(&u, t0).is_ok()));
        assert_eq!(limiter.check_at(&u, t0), Err(1));
        assert!(
            limiter
                .check_at(&u, t0 + Duration::from_millis(500))
                .is_ok(),
            "half a second refills one"
        );
        assert!(
            limiter
                .check_at(&u, t0 + Duration::from_millis(500))
                .is_err()
        );
        assert!(
            limiter.check_at(&UserId("other".into()), t0).is_ok(),
            "per user"
        );
    }
}
