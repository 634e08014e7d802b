//! Throttling of failed sign-ins on one account.

use time::{Duration, OffsetDateTime};

/// Failed attempts allowed before the account is locked for a while.
pub const FREE_ATTEMPTS: i64 = 5;

/// After `failures` consecutive failed sign-ins at `now`, until when further
/// attempts are refused: none for the first [`FREE_ATTEMPTS`], then 30 s,
/// doubling with each further failure, at most 15 minutes.
pub fn locked_until(failures: i64, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if failures < FREE_ATTEMPTS {
        return None;
    }
    let doublings = (failures - FREE_ATTEMPTS).min(10) as u32;
    let secs = (30i64 << doublings).min(15 * 60);
    Some(now + Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lockout_grows_and_is_capped() {
        let now = datetime!(2026-11-23 0:00 UTC);
        assert_eq!(locked_until(4, now), None);
        assert_eq!(locked_until(5, now), Some(now + Duration::seconds(30)));
        assert_eq!(locked_until(6, now), Some(now + Duration::seconds(60)));
        assert_eq!(locked_until(50, now), Some(now + Duration::minutes(15)));
    }
}
