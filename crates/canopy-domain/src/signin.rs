//! Throttling of sign-ins (SE1, SE2): slow a guesser down without locking
//! an account's owner out, and answer alike for known and unknown names.
//!
//! Every attempt is counted *before* its password is checked, under three
//! counters at once ([`Scope`]): the account from this client address, the
//! account from anywhere, and the client address across accounts. From a
//! scope's free attempts on, each further attempt locks that counter for a
//! growing time (30 s, doubling, at most [`MAX_LOCK`]); failures older than
//! [`WINDOW`] are forgotten. An attempt goes ahead only while none of its
//! counters is locked, except that the account-wide and address-wide locks
//! do not stop the account's owner at an address they signed in from before
//! ([`gate`]): a guesser elsewhere, or spraying from a shared address, can
//! slow the account's sign-ins, not keep its owner out.
//!
//! Counters are keyed by the name as typed ([`Keys`]), never by whether an
//! account of that name exists, so unknown names are throttled exactly like
//! known ones and the answers cannot tell them apart.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::hours(1);
/// The longest a counter locks for.
pub const MAX_LOCK: Duration = Duration::minutes(15);
/// The first lock.
pub const FIRST_LOCK: Duration = Duration::seconds(30);
/// How long an address stays known for an account after a sign-in from it.
pub const KNOWN_ADDRESS_FOR: Duration = Duration::days(90);

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One account from one client address: the guesser at that address.
    AccountAtAddress,
    /// One account from every address: guessing spread over many addresses.
    Account,
    /// One client address over every account: spraying one password.
    Address,
}

impl Scope {
    /// Attempts within [`WINDOW`] before this scope locks.
    pub fn free_attempts(self) -> i64 {
        match self {
            Scope::AccountAtAddress => 5,
            Scope::Account => 20,
            Scope::Address => 50,
        }
    }
}

/// A throttling counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Attempts counted within [`WINDOW`] of `last_at` that did not succeed.
    pub failures: i64,
    pub locked_until: Option<OffsetDateTime>,
    /// The last attempt counted.
    pub last_at: Option<OffsetDateTime>,
}

impl Counter {
    /// Until when this counter refuses attempts, if it does at `now`.
    pub fn locked_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.locked_until.filter(|t| *t > now)
    }

    /// The counter with one more attempt counted at `now`, before its
    /// password is checked: failures older than [`WINDOW`] are forgotten,
    /// and from the scope's free attempts on, the counter locks.
    pub fn count(self, scope: Scope, now: OffsetDateTime) -> Counter {
        let recent = self.last_at.is_some_and(|t| now - t < WINDOW);
        let failures = if recent { self.failures.saturating_add(1) } else { 1 };
        let locked_until = lock_for(scope, failures).map(|d| now.saturating_add(d));
        Counter { failures, locked_until, last_at: Some(now) }
    }

    /// The counter after the attempt counted last succeeded: the account's
    /// counters start again; the address's gives back that one attempt (it
    /// is shared by everyone behind the address, and a guesser with an
    /// account of their own must not clear it by signing in).
    pub fn succeeded(self, scope: Scope) -> Counter {
        match scope {
            Scope::AccountAtAddress | Scope::Account => Counter { failures: 0, locked_until: None, ..self },
            Scope::Address => {
                let failures = self.failures.saturating_sub(1).max(0);
                let locked_until = if lock_for(scope, failures).is_none() { None } else { self.locked_until };
                Counter { failures, locked_until, ..self }
            }
        }
    }
}

/// How long `failures` attempts lock a counter of `scope`: none below its
/// free attempts, then [`FIRST_LOCK`], doubling, at most [`MAX_LOCK`].
pub fn lock_for(scope: Scope, failures: i64) -> Option<Duration> {
    let over = failures.checked_sub(scope.free_attempts())?;
    if over < 0 {
        return None;
    }
    let doublings = u32::try_from(over.min(10)).unwrap_or(10);
    let secs = FIRST_LOCK.whole_seconds().saturating_mul(1 << doublings);
    Some(Duration::seconds(secs).min(MAX_LOCK))
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check the password.
    Go,
    /// Refuse without checking, until this instant.
    Wait(OffsetDateTime),
}

/// Whether an attempt with these counters goes ahead at `now`. The lock on
/// the account at this address always holds. The account-wide lock and the
/// address-wide lock do not hold for the account at an address it signed in
/// from before (`known_address`): neither a guesser spreading over many
/// addresses nor one spraying names from a shared address (an office's NAT,
/// a proxy) keeps the account's owner out.
pub fn gate(pair: &Counter, account: &Counter, address: &Counter, known_address: bool, now: OffsetDateTime) -> Gate {
    let (account, address) =
        if known_address { (None, None) } else { (account.locked_at(now), address.locked_at(now)) };
    match [pair.locked_at(now), address, account].into_iter().flatten().max() {
        Some(until) => Gate::Wait(until),
        None => Gate::Go,
    }
}

/// Who may sign in with a local password (ID1). With an identity provider,
/// an installation can leave passwords to its admins alone: the break-glass
/// accounts that still work when the provider does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalSignIn {
    /// Every active account with a password.
    #[default]
    All,
    /// Only accounts holding the installation's admin role.
    AdminsOnly,
}

impl LocalSignIn {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalSignIn::All => "all",
            LocalSignIn::AdminsOnly => "admins",
        }
    }

    /// Whether an account with `roles` may sign in with its password.
    pub fn allows(self, roles: &std::collections::BTreeSet<crate::InstallationRole>) -> bool {
        match self {
            LocalSignIn::All => true,
            LocalSignIn::AdminsOnly => roles.contains(&crate::InstallationRole::Admin),
        }
    }
}

impl std::str::FromStr for LocalSignIn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(LocalSignIn::All),
            "admins" => Ok(LocalSignIn::AdminsOnly),
            _ => Err("must be all or admins".into()),
        }
    }
}

/// The counters' keys of an attempt on `username` from `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub pair: String,
    pub account: String,
    pub address: String,
    /// The address as remembered for the account (`address` without its prefix).
    pub client: String,
}

/// The longest name a key holds; longer input is cut (it names no account).
const KEY_NAME_MAX: usize = 256;

/// The keys of an attempt: the name as typed (trimmed, lowercase, cut to
/// 256 characters), whether or not an account has it; an IPv6 address
/// counts by its /64 network, which one client usually holds whole.
pub fn keys(username: &str, address: IpAddr) -> Keys {
    let name: String = username.trim().to_lowercase().chars().take(KEY_NAME_MAX).collect();
    let client = match address {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    };
    Keys {
        pair: format!("pair:{client} {name}"),
        account: format!("account:{name}"),
        address: format!("address:{client}"),
        client,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id1_local_passwords_can_be_left_to_admins_alone() {
        use std::collections::BTreeSet;
        let admin: BTreeSet<_> = [crate::InstallationRole::Admin].into();
        let engineer: BTreeSet<_> = [crate::InstallationRole::PlatformEngineer].into();
        assert!(LocalSignIn::All.allows(&BTreeSet::new()));
        assert!(LocalSignIn::AdminsOnly.allows(&admin));
        assert!(!LocalSignIn::AdminsOnly.allows(&engineer));
        assert!(!LocalSignIn::AdminsOnly.allows(&BTreeSet::new()));
        assert_eq!("admins".parse(), Ok(LocalSignIn::AdminsOnly));
        assert!("some".parse::<LocalSignIn>().is_err());
    }

    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 0:00 UTC);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn counted(scope: Scope, n: i64, mut at: OffsetDateTime) -> Counter {
        let mut c = Counter::default();
        for _ in 0..n {
            c = c.count(scope, at);
            at += Duration::seconds(1);
        }
        c
    }

    #[test]
    fn se2_locks_grow_and_are_capped() {
        let s = Scope::AccountAtAddress;
        assert_eq!(lock_for(s, 4), None);
        assert_eq!(lock_for(s, 5), Some(Duration::seconds(30)));
        assert_eq!(lock_for(s, 6), Some(Duration::seconds(60)));
        assert_eq!(lock_for(s, 500), Some(MAX_LOCK));
        assert_eq!(lock_for(s, i64::MIN), None);
        assert_eq!(lock_for(Scope::Account, 19), None);
        assert_eq!(lock_for(Scope::Address, 49), None);
        // the fifth attempt is checked, and locks the sixth out
        let c = counted(s, 4, NOW);
        assert_eq!(c.locked_at(NOW + Duration::seconds(4)), None);
        let c = c.count(s, NOW + Duration::seconds(4));
        assert_eq!(c.locked_at(NOW + Duration::seconds(5)), Some(NOW + Duration::seconds(34)));
        // huge counts never overflow
        let c = Counter { failures: i64::MAX, locked_until: None, last_at: Some(NOW) };
        assert_eq!(c.count(s, NOW).locked_until, Some(NOW + MAX_LOCK));
    }

    #[test]
    fn se2_failures_are_forgotten_after_the_window() {
        let s = Scope::AccountAtAddress;
        let c = counted(s, 5, NOW);
        let later = NOW + WINDOW + Duration::minutes(1);
        assert_eq!(c.count(s, later).failures, 1);
        assert_eq!(c.count(s, later).locked_at(later), None);
    }

    #[test]
    fn se2_success_clears_the_account_but_not_the_address() {
        let pair = counted(Scope::AccountAtAddress, 3, NOW).succeeded(Scope::AccountAtAddress);
        assert_eq!((pair.failures, pair.locked_until), (0, None));
        let address = counted(Scope::Address, 51, NOW).succeeded(Scope::Address);
        assert_eq!(address.failures, 50);
        assert!(address.locked_at(NOW + Duration::seconds(51)).is_some(), "still locked: 50 failures");
        let address = counted(Scope::Address, 50, NOW).succeeded(Scope::Address);
        assert_eq!((address.failures, address.locked_until), (49, None));
    }

    #[test]
    fn se2_the_owner_at_a_known_address_passes_an_account_wide_lock() {
        let free = Counter::default();
        let account = counted(Scope::Account, 25, NOW);
        let at = NOW + Duration::seconds(30);
        assert!(matches!(gate(&free, &account, &free, false, at), Gate::Wait(_)));
        assert_eq!(gate(&free, &account, &free, true, at), Gate::Go);
        // but never a lock on the account at this address
        let pair = counted(Scope::AccountAtAddress, 5, NOW);
        assert!(matches!(gate(&pair, &free, &free, true, at), Gate::Wait(_)));
        // nor a lock on a shared address (a NAT, a proxy) sprayed by someone else
        let address = counted(Scope::Address, 60, NOW);
        assert_eq!(gate(&free, &free, &address, true, at), Gate::Go);
        assert!(matches!(gate(&free, &free, &address, false, at), Gate::Wait(_)));
        // the longest lock is the one reported
        assert_eq!(Some(gate(&pair, &account, &address, false, at)), address.locked_until.map(Gate::Wait));
    }

    #[test]
    fn se1_keys_do_not_depend_on_whether_the_account_exists() {
        let a: IpAddr = ip("192.0.2.7");
        let k = keys("  Admin ", a);
        assert_eq!(k.account, "account:admin");
        assert_eq!(k.pair, "pair:192.0.2.7 admin");
        assert_eq!(k.address, "address:192.0.2.7");
        let long = keys(&"x".repeat(100_000), a);
        assert!(long.account.len() < 300);
        let v6: IpAddr = ip("2001:db8:1:2:3:4:5:6");
        let other: IpAddr = ip("2001:db8:1:2:ffff::1");
        assert_eq!(keys("ann", v6).address, keys("ann", other).address);
        assert_eq!(keys("ann", v6).address, "address:2001:db8:1:2::/64");
        let mapped: IpAddr = ip("::ffff:192.0.2.7");
        assert_eq!(keys("ann", mapped).address, "address:192.0.2.7");
    }
}
