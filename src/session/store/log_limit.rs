//! A limit on how often one repeated log line is written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admits one log line per interval and counts the lines suppressed in
/// between, so that an outage that fails every request logs a few lines
/// that still tell how many requests failed.
pub struct LogLimiter {
    interval: Duration,
    /// When the last admitted line was written.
    last: Mutex<Option<Instant>>,
    /// Lines suppressed since then.
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// Creates a limiter that admits one line per `interval`; usable in a
    /// `static`.
    pub const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns the number of lines suppressed since the last admitted one
    /// when a line may be written now, and `None` (counting the line as
    /// suppressed) otherwise.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        // The guarded value is replaced whole, so a panic elsewhere cannot
        // leave it half-written.
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_suppressed_lines() {
        let limiter = LogLimiter::new(Duration::from_millis(200));
        assert_eq!(limiter.admit(), Some(0), "the first line is written");
        for _ in 0..16 {
            assert_eq!(limiter.admit(), None, "repeats within the interval");
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            limiter.admit(),
            Some(16),
            "the next line after the interval counts the suppressed ones"
        );
        assert_eq!(limiter.admit(), None, "and starts a new interval");
    }
}
