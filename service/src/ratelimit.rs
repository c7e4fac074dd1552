//! Token-bucket rate limits, one bucket per key (an account, a device). Memory is bounded: a
//! full table first forgets the buckets that have refilled, then refuses new keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Rate;

/// At most this many buckets per limiter.
const MAX_BUCKETS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A rate limiter keyed by `K`.
pub struct RateLimiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `rate` per key.
    pub fn new(rate: Rate) -> Self {
        RateLimiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `key`'s bucket: `Ok` if allowed, else how long until it would be.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Rate { per_second, burst } = self.rate;
        if !buckets.contains_key(key) && buckets.len() >= MAX_BUCKETS {
            // A full bucket carries no state worth keeping.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst);
            if buckets.len() >= MAX_BUCKETS {
                return Err(Duration::from_secs(1));
            }
        }
        let b = buckets.entry(key.clone()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(Rate { per_second: 2.0, burst: 3.0 });
        let t = Instant::now();
        for _ in 0..3 {
            l.check_at(&"a", t).unwrap();
        }
        let wait = l.check_at(&"a", t).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        l.check_at(&"b", t).expect("another key has its own bucket");
        l.check_at(&"a", t + Duration::from_millis(500)).expect("refilled one");
        assert!(l.check_at(&"a", t + Duration::from_millis(500)).is_err());
    }
}
