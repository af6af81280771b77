//! Retry policy: how many attempts a task gets and how long it waits between them.

use serde::{Deserialize, Serialize};

/// Exponential backoff with jitter, capped. Attempt `n` (1-based, the attempt that just failed)
/// waits a random time between half and all of `min(max_delay, base_delay * 2^(n-1))`, so a
/// crowd of failing tasks does not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, base_delay_ms: 1_000, max_delay_ms: 300_000 }
    }
}

impl RetryPolicy {
    /// The upper bound of the delay after the given failed attempt.
    pub fn ceiling_ms(&self, failed_attempt: u32) -> i64 {
        let shift = failed_attempt.saturating_sub(1).min(40);
        self.base_delay_ms.max(0).saturating_mul(1_i64 << shift).min(self.max_delay_ms.max(0))
    }

    /// The delay after the given failed attempt, with `unit` in `[0, 1)` supplying the jitter.
    pub fn delay_ms(&self, failed_attempt: u32, unit: f64) -> i64 {
        let ceiling = self.ceiling_ms(failed_attempt);
        let half = ceiling / 2;
        half + ((ceiling - half) as f64 * unit.clamp(0.0, 1.0)) as i64
    }

    /// The delay with jitter drawn from the thread's random generator.
    pub fn jittered_delay_ms(&self, failed_attempt: u32) -> i64 {
        self.delay_ms(failed_attempt, rand::random::<f64>())
    }

    pub fn may_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap_and_stay_within_jitter_bounds() {
        let p = RetryPolicy { max_attempts: 10, base_delay_ms: 100, max_delay_ms: 1_000 };
        let ceilings: Vec<i64> = (1..=6).map(|n| p.ceiling_ms(n)).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(p.delay_ms(3, 0.0), 200);
        assert_eq!(p.delay_ms(3, 1.0), 400);
        for _ in 0..100 {
            let d = p.jittered_delay_ms(4);
            assert!((400..=800).contains(&d), "{d}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
        assert!(p.may_retry(1));
        assert!(!p.may_retry(2));
    }
}
