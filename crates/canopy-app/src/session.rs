//! Sessions: signing in with a local account (throttled, SE1, SE2), signing
//! out, and the pending invitations a first sign-in accepts (WS3).

use std::net::IpAddr;

use canopy_domain::SubjectKind;
use canopy_domain::events::{InvitationAccepted, SignInThrottled};
use canopy_domain::history::{Initiator, InitiatorKind};
use canopy_domain::signin::{self, Gate, LocalSignIn, Scope};
use canopy_store::{Store, Tx, UserRecord};
use time::{Duration, OffsetDateTime};

use crate::credentials::{PasswordHashing, SESSION_PREFIX, new_secret, verify_password};
use crate::error::{Error, Result};
use crate::principal::Principal;

/// How long a session lasts: at most `absolute`, and, for a session of the
/// web UI, no longer than `idle` without being used.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub absolute: Duration,
    pub idle: Option<Duration>,
}

/// A new session: its bearer token (shown once) and when it ends.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

/// Sign in with a local account and get a session token; where `policy`
/// leaves passwords to admins, any other account is refused like a wrong
/// password.
///
/// Attempts are throttled per account at this address, per account and per
/// address (SE2, `canopy_domain::signin`): a locked attempt answers 429 with
/// `Retry-After` without its password being checked, alike for known and
/// unknown usernames; the account's owner at an address they signed in from
/// before passes an account-wide lock. Too many sign-ins at once answer 503
/// with `Retry-After` (SE1).
pub async fn sign_in(
    store: &Store,
    hashing: &PasswordHashing,
    now: OffsetDateTime,
    client: IpAddr,
    (username, password): (&str, String),
    (lifetime, policy): (Lifetime, LocalSignIn),
) -> Result<NewSession> {
    for (field, value) in [("username", username), ("password", password.as_str())] {
        if value.chars().count() > 1000 {
            return Err(Error::invalid(field, "must be at most 1000 characters"));
        }
    }
    // at most one hash per core, before anything else costs (SE1)
    let admission = hashing.admit().await?;
    let keys = signin::keys(username, client);
    let user = count_attempt(store, &keys, username.trim(), now).await?;
    let (ok, admission) =
        verify_password(admission, password, user.as_ref().and_then(|u| u.password_hash.clone())).await;
    drop(admission);
    // under `LocalSignIn::AdminsOnly` anyone else is answered like a wrong
    // password, so that the answer never confirms a password
    let refused = || {
        Error::Unauthenticated(match policy {
            LocalSignIn::All => "wrong username or password".into(),
            LocalSignIn::AdminsOnly => "wrong username or password; passwords here are for admins only, everyone \
                                        else signs in through the identity provider (canopy login --sso)"
                .into(),
        })
    };
    // a deactivated account is answered like a wrong password: the answer
    // must not tell whether the password was right
    let Some(user) = user.filter(|u| ok && u.active && policy.allows(&u.installation_roles)) else {
        return Err(refused());
    };
    let mut tx = store.write().await?;
    count_success(&mut tx, &keys, now).await?;
    tx.remember_address(user.id, &keys.client, now).await?;
    accept_invitations(&mut tx, &user, now).await?;
    let (token, hash) = new_secret(SESSION_PREFIX)?;
    let expires_at = now + lifetime.absolute;
    tx.insert_session(&hash, user.id, now, expires_at, lifetime.idle.map(|idle| now + idle)).await?;
    tx.delete_expired_sessions(now).await?;
    tx.commit().await?;
    Ok(NewSession { token, expires_at })
}

/// Count a sign-in attempt (or a check of one's current password) before its
/// password is checked, atomically with every other attempt (SE2), or refuse
/// it (429) while a counter locks it. A locked attempt is refused from a
/// read alone: it writes nothing, so a locked-out guesser cannot occupy the
/// database. Returns the account of that name, if any.
pub async fn count_attempt(
    store: &Store,
    keys: &signin::Keys,
    username: &str,
    now: OffsetDateTime,
) -> Result<Option<UserRecord>> {
    let refuse = |until: OffsetDateTime| Error::TooManyRequests {
        detail: "too many sign-in attempts; try again later".into(),
        retry_after: (until - now).whole_seconds().max(1),
    };
    let (user, known) = {
        let mut tx = store.read().await?;
        let user = tx.user_by_username(username).await?;
        let known = match &user {
            Some(u) => tx.is_known_address(u.id, &keys.client, now).await?,
            None => false,
        };
        let pair = tx.sign_in_counter(&keys.pair).await?;
        let account = tx.sign_in_counter(&keys.account).await?;
        let address = tx.sign_in_counter(&keys.address).await?;
        if let Gate::Wait(until) = signin::gate(&pair, &account, &address, known, now) {
            return Err(refuse(until));
        }
        (user, known)
    };
    let mut tx = store.write().await?;
    // always in this order, so that parallel attempts never wait on each other in a circle
    let pair = tx.lock_sign_in_counter(&keys.pair, now).await?;
    let account = tx.lock_sign_in_counter(&keys.account, now).await?;
    let address = tx.lock_sign_in_counter(&keys.address, now).await?;
    // again under the locks: attempts made meanwhile count
    if let Gate::Wait(until) = signin::gate(&pair, &account, &address, known, now) {
        tx.commit().await?;
        return Err(refuse(until));
    }
    tx.save_sign_in_counter(&keys.pair, &pair.count(Scope::AccountAtAddress, now), now).await?;
    let (account_after, address_after) = (account.count(Scope::Account, now), address.count(Scope::Address, now));
    tx.save_sign_in_counter(&keys.account, &account_after, now).await?;
    tx.save_sign_in_counter(&keys.address, &address_after, now).await?;
    // a lock that begins now is worth an admin's attention (HI1); one
    // account at one address locking is everyday mistyping, not recorded
    for (scope, key, before, after) in
        [("account", &keys.account, account, account_after), ("address", &keys.address, address, address_after)]
    {
        if let (None, Some(until)) = (before.locked_at(now), after.locked_at(now)) {
            let throttled = SignInThrottled {
                scope: scope.to_owned(),
                key: key.split_once(':').map_or(key.as_str(), |(_, k)| k).to_owned(),
                failures: u64::try_from(after.failures).unwrap_or(0),
                locked_until: until,
            };
            tx.record(None, now, &Initiator::system("sign-in throttling"), throttled.into())?;
        }
    }
    tx.forget_sign_in_counters(now - signin::WINDOW, now).await?;
    tx.commit().await?;
    Ok(user)
}

/// The attempt counted last succeeded: settle its counters.
pub async fn count_success(tx: &mut Tx, keys: &signin::Keys, now: OffsetDateTime) -> Result<()> {
    for (key, scope) in
        [(&keys.pair, Scope::AccountAtAddress), (&keys.account, Scope::Account), (&keys.address, Scope::Address)]
    {
        let c = tx.lock_sign_in_counter(key, now).await?;
        tx.save_sign_in_counter(key, &c.succeeded(scope), now).await?;
    }
    Ok(())
}

/// Sign out: end the principal's session (SE6). An API key is not a session.
pub async fn sign_out(store: &Store, by: &Principal) -> Result<()> {
    let Some(session) = &by.session else {
        return Err(Error::Unreadable(
            "this is an API key, not a session; revoke it with DELETE /api/v1/api-keys/{id}".into(),
        ));
    };
    let mut tx = store.write().await?;
    tx.delete_session(session).await?;
    tx.commit().await?;
    Ok(())
}

/// A session of the web UI is in use at `now`: keep it alive for another
/// `idle`. Written at most once per half of `idle`, so that reading pages
/// does not make every request a write.
pub async fn keep_alive(store: &Store, by: &Principal, now: OffsetDateTime, idle: Duration) -> Result<()> {
    match (&by.session, by.idle_until) {
        (Some(session), Some(until)) if until - now < idle / 2 => Ok(store.touch_session(session, now + idle).await?),
        _ => Ok(()),
    }
}

/// Pending invitations of the user's e-mail become memberships on sign-in (WS3).
pub(crate) async fn accept_invitations(tx: &mut Tx, user: &UserRecord, now: OffsetDateTime) -> Result<()> {
    let by = Initiator { kind: InitiatorKind::User, id: user.id.to_string(), name: user.username.clone() };
    for inv in tx.invitations_for_email(&user.email).await? {
        let current = tx.member_role(inv.workspace_id, SubjectKind::User, user.id).await?;
        let role = current.map_or(inv.role, |c| c.max(inv.role));
        tx.upsert_member(inv.workspace_id, SubjectKind::User, user.id, role, &inv.invited_by, now).await?;
        tx.delete_invitation(inv.id).await?;
        let accepted = InvitationAccepted {
            email: inv.email,
            user: user.username.clone(),
            role: role.as_str().to_owned(),
            invited_by: inv.invited_by,
        };
        tx.record(Some(inv.workspace_id), now, &by, accepted.into())?;
    }
    Ok(())
}
