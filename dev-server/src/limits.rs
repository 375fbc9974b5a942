//! Rate limiting by token buckets: sends per user, sign-ins per client address and per user
//! id. A burst of quick requests is fine, but a runaway client (or a retry storm, or someone
//! trying sign-ins) gets 429 with `Retry-After`.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Instant};

use farm_chat_protocol::UserId;

use crate::shared::Shared;

/// A token bucket per key (a user, a client address).
#[derive(Debug)]
pub struct RateLimiter<K = UserId> {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `burst` requests at once, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_minute` at once, refilled at `per_minute` a minute.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute.max(1), f64::from(per_minute.max(1)) / 60.0)
    }

    /// Takes one token for `user`, or says after how many whole seconds one is available.
    pub fn check(&self, user: &K) -> Result<(), u64> {
        self.check_at(user, Instant::now())
    }

    /// [`check`](Self::check), and the deployment-wide bucket `bucket` of [`Shared`] (when
    /// instances share Redis, the same bucket across all of them). Redis out of reach leaves
    /// this instance's own limit.
    pub async fn check_shared(&self, shared: &dyn Shared, bucket: &str, user: &K) -> Result<(), u64>
    where
        K: std::fmt::Display,
    {
        self.check(user)?;
        let burst = self.burst as u32;
        match shared
            .take_token(bucket, &user.to_string(), burst, self.per_second)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, bucket, "shared rate limit unavailable; this instance's applies");
                Ok(())
            }
        }
    }

    fn check_at(&self, user: &K, now: Instant) -> Result<(), u64> {
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
