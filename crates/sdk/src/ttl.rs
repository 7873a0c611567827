//! TTL arithmetic shared by tokens and leases: how long a new or renewed credential lives.

use std::time::{Duration, SystemTime};

use crate::{
    duration::format_duration,
    error::{Error, Result},
    logical::MountTtls,
};

/// What a TTL is computed from.
#[derive(Debug, Clone, Copy)]
pub struct TtlRequest {
    /// Requested increment, measured from now; zero means "the backend's TTL".
    pub increment: Duration,
    /// The backend's (role's) TTL; zero means the mount default.
    pub backend_ttl: Duration,
    /// The backend's (role's) maximum; zero means the mount maximum.
    pub backend_max_ttl: Duration,
    /// Periodic credentials always renew to exactly this; zero means not periodic.
    pub period: Duration,
    /// A hard cap counted from `issued_at`; zero means none.
    pub explicit_max_ttl: Duration,
    /// When the credential was first issued.
    pub issued_at: SystemTime,
}

impl TtlRequest {
    /// A request with every knob at zero, for a credential issued at `issued_at`.
    pub fn issued_at(issued_at: SystemTime) -> Self {
        TtlRequest {
            increment: Duration::ZERO,
            backend_ttl: Duration::ZERO,
            backend_max_ttl: Duration::ZERO,
            period: Duration::ZERO,
            explicit_max_ttl: Duration::ZERO,
            issued_at,
        }
    }
}

/// The TTL to grant and any warning to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlDecision {
    pub ttl: Duration,
    pub warnings: Vec<String>,
}

/// Computes a TTL the way Vault does: the increment counts from now, and the result never
/// reaches past `issued_at` plus the effective maximum (the smallest of the mount, backend and
/// explicit maximums). A periodic credential gets its period, capped only by an explicit max.
pub fn calculate_ttl(
    mount: MountTtls,
    request: TtlRequest,
    now: SystemTime,
) -> Result<TtlDecision> {
    let mut warnings = Vec::new();
    let (mut ttl, max_ttl) = if !request.period.is_zero() {
        (request.period, request.explicit_max_ttl)
    } else {
        let ttl = [
            request.increment,
            request.backend_ttl,
            mount.default_lease_ttl,
        ]
        .into_iter()
        .find(|ttl| !ttl.is_zero())
        .unwrap_or(Duration::ZERO);
        let mut max_ttl = mount.max_lease_ttl;
        if !request.backend_max_ttl.is_zero() && request.backend_max_ttl < max_ttl {
            max_ttl = request.backend_max_ttl;
        }
        if !request.explicit_max_ttl.is_zero() && request.explicit_max_ttl < max_ttl {
            max_ttl = request.explicit_max_ttl;
        }
        (ttl, max_ttl)
    };
    if !max_ttl.is_zero() {
        let max_valid = request.issued_at + max_ttl;
        let remaining = max_valid
            .duration_since(now)
            .map_err(|_| Error::invalid("past the max TTL, cannot renew"))?;
        // Whole seconds, so clients see the round number they asked for.
        let remaining = Duration::from_secs(remaining.as_secs_f64().round() as u64);
        if remaining.is_zero() {
            return Err(Error::invalid("past the max TTL, cannot renew"));
        }
        if ttl > remaining {
            if !request.increment.is_zero() || !request.backend_ttl.is_zero() {
                warnings.push(format!(
                    "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                    format_duration(ttl),
                    format_duration(remaining)
                ));
            }
            ttl = remaining;
        }
    }
    Ok(TtlDecision {
        ttl: Duration::from_secs(ttl.as_secs()),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn mount() -> MountTtls {
        MountTtls {
            default_lease_ttl: HOUR,
            max_lease_ttl: 24 * HOUR,
        }
    }

    fn check(request: TtlRequest, elapsed: Duration) -> Result<TtlDecision> {
        calculate_ttl(mount(), request, request.issued_at + elapsed)
    }

    fn at_start() -> TtlRequest {
        TtlRequest::issued_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
    }

    #[test]
    fn defaults_come_from_the_mount() {
        assert_eq!(check(at_start(), Duration::ZERO).unwrap().ttl, HOUR);
    }

    #[test]
    fn increment_beats_backend_ttl_and_counts_from_now() {
        let request = TtlRequest {
            increment: 2 * HOUR,
            backend_ttl: 5 * HOUR,
            ..at_start()
        };
        assert_eq!(check(request, 10 * HOUR).unwrap().ttl, 2 * HOUR);
    }

    #[test]
    fn capped_by_the_smallest_maximum_with_a_warning() {
        let request = TtlRequest {
            increment: 10 * HOUR,
            backend_max_ttl: 12 * HOUR,
            ..at_start()
        };
        let decision = check(request, 4 * HOUR).unwrap();
        assert_eq!(decision.ttl, 8 * HOUR);
        assert_eq!(decision.warnings.len(), 1);
        assert!(check(request, 13 * HOUR).is_err());
    }

    #[test]
    fn periodic_ignores_mount_max_but_not_explicit_max() {
        let request = TtlRequest {
            period: 2 * HOUR,
            ..at_start()
        };
        assert_eq!(check(request, 100 * HOUR).unwrap().ttl, 2 * HOUR);
        let request = TtlRequest {
            period: 2 * HOUR,
            explicit_max_ttl: 3 * HOUR,
            ..at_start()
        };
        assert_eq!(check(request, 2 * HOUR).unwrap().ttl, HOUR);
    }
}
