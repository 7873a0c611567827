//! Wall-clock time for expiry, injectable so lease tests can run on tokio's paused clock.

use std::time::{Duration, SystemTime};

/// The time source of the core. Lease and token expiry times are wall-clock times (they are
/// persisted and must mean the same after a restart); tests swap in a clock that follows
/// tokio's virtual time so that hours of expiry run in milliseconds.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    System,
    /// Wall time at `start`, advanced by tokio's (possibly paused) monotonic clock since.
    Tokio {
        wall: SystemTime,
        start: tokio::time::Instant,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Clock(Source::System)
    }

    /// A clock that moves with `tokio::time`: under `tokio::time::pause()` it stands still
    /// until the test advances it. Must be created inside a runtime.
    pub fn tokio() -> Self {
        Clock(Source::Tokio {
            wall: SystemTime::now(),
            start: tokio::time::Instant::now(),
        })
    }

    pub fn now(&self) -> SystemTime {
        match &self.0 {
            Source::System => SystemTime::now(),
            Source::Tokio { wall, start } => *wall + start.elapsed(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i64 {
        to_unix_ms(self.now())
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_secs(&self) -> i64 {
        self.unix_ms().div_euclid(1000)
    }
}

/// The whole second nearest to `now_ms + ttl`: token expiry is kept in seconds, and rounding
/// (rather than truncating) makes a fresh token's lease show the TTL it was given.
pub fn expiry_secs(now_ms: i64, ttl: Duration) -> i64 {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
    (now_ms + ttl_ms + 500).div_euclid(1000)
}

pub fn to_unix_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_virtual_time() {
        let clock = Clock::tokio();
        let before = clock.unix_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.unix_ms() - before, 3_600_000);
    }

    #[test]
    fn unix_ms_round_trips() {
        let t = from_unix_ms(1_700_000_000_123);
        assert_eq!(to_unix_ms(t), 1_700_000_000_123);
    }
}
