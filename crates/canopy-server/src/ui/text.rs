//! How the UI words and formats values: role names as the seeds write
//! them, times in UTC, and an expiration's state in words as well as colour
//! (colour never carries meaning alone).

use canopy_domain::WorkspaceRole;
use canopy_domain::access::{ExpiryState, expiry_state};
use canopy_domain::replication::TenantStatus;
use time::OffsetDateTime;
use time::macros::format_description;

/// A workspace role as people call it.
pub fn workspace_role(role: WorkspaceRole) -> &'static str {
    match role {
        WorkspaceRole::Owner => "Workspace Owner",
        WorkspaceRole::Manager => "Workspace Manager",
        WorkspaceRole::Member => "Workspace Member",
    }
}

/// Every workspace role, strongest last, with its label (for dropdowns).
pub fn workspace_roles() -> Vec<(&'static str, &'static str)> {
    [WorkspaceRole::Member, WorkspaceRole::Manager, WorkspaceRole::Owner]
        .into_iter()
        .map(|r| (r.as_str(), workspace_role(r)))
        .collect()
}

/// An instant to the minute, in UTC.
pub fn when(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// What happens next to a tenant of `status` whose next attempt is `at`,
/// as a sentence ("" unless it failed). The instant to the second: a first
/// backoff is seconds long.
pub fn next_attempt(status: TenantStatus, at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    match (status, at) {
        (TenantStatus::Failed, None) => "Canopy does not retry this on its own: mend the cause, then press \
            Replicate (the periodic reconcile tries again too)."
            .to_owned(),
        (TenantStatus::Failed, Some(at)) if at <= now => "Canopy tries again shortly.".to_owned(),
        (TenantStatus::Failed, Some(at)) => {
            format!("Canopy tries again at {}.", at.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default())
        }
        _ => String::new(),
    }
}

/// The day of an instant, in UTC.
pub fn day(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day]");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// A date field (`YYYY-MM-DD`) as the start of that day in UTC, which is
/// when access given until that day ends; empty is none. A wrong date is
/// the problem of `field`.
pub fn date_field(field: &str, raw: &str) -> Result<Option<OffsetDateTime>, canopy_app::Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let f = format_description!("[year]-[month]-[day]");
    time::Date::parse(raw, &f)
        .map(|d| Some(d.midnight().assume_utc()))
        .map_err(|_| canopy_app::Error::invalid(field, "give the date as YYYY-MM-DD"))
}

/// An expiration as shown beside access: its class (`expired`, `soon` or
/// empty) and words ("expired 2 days ago", "expires in 3 days",
/// "2027-01-31", "never"), decided by the one rule of the domain.
pub fn expiry(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> (&'static str, String) {
    let Some(at) = expires_at else { return ("", "never".to_owned()) };
    match expiry_state(Some(at), now) {
        Some(ExpiryState::Expired) => ("expired", format!("expired {} ago ({})", span(now - at), day(at))),
        Some(ExpiryState::Soon) => ("soon", format!("expires in {} ({})", span(at - now), day(at))),
        None => ("", day(at)),
    }
}

/// A duration in the largest whole unit that fits.
fn span(d: time::Duration) -> String {
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    if d.whole_days() >= 1 {
        plural(d.whole_days(), "day")
    } else if d.whole_hours() >= 1 {
        plural(d.whole_hours(), "hour")
    } else {
        plural(d.whole_minutes().max(1), "minute")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn tn5_a_failed_tenant_says_what_happens_next() {
        let now = datetime!(2026-11-23 10:00:00 UTC);
        let later = Some(datetime!(2026-11-23 10:00:05 UTC));
        assert_eq!(next_attempt(TenantStatus::Failed, later, now), "Canopy tries again at 2026-11-23 10:00:05 UTC.");
        assert_eq!(next_attempt(TenantStatus::Failed, Some(now), now), "Canopy tries again shortly.");
        let never = next_attempt(TenantStatus::Failed, None, now);
        assert!(never.starts_with("Canopy does not retry this on its own"), "{never}");
        for settled in [TenantStatus::Succeeded, TenantStatus::Pending, TenantStatus::InProgress] {
            assert_eq!(next_attempt(settled, later, now), "");
        }
    }
}
