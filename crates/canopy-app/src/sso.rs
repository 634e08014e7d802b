//! Sign-in through an OpenID Connect provider (ID1, WS3). The protocol (the
//! redirect, the code exchange, the ID token's signature, issuer, audience,
//! expiry and nonce) is the server's; this module keeps the sign-ins sent
//! to the provider until they come back, and turns a verified identity into
//! a session: the account the provider's (issuer, subject) names, made on
//! the first sign-in from the claims, never found by e-mail alone. An
//! account SCIM provisioned (ID2) becomes the person's at their first
//! sign-in when the provider names them as SCIM did: the token's subject is
//! the account's SCIM `externalId` (Okta), or its `preferred_username` the
//! SCIM `userName` (Microsoft Entra ID's UPN).

use base64::Engine;
use canopy_domain::events::{IdentityLinked, UserSignedUp};
use canopy_domain::history::{Initiator, InitiatorKind};
use canopy_domain::{Email, PersonName, Username};
use canopy_store::{CliGrant, NewUser, PendingOidcLogin, ScimUserQuery, Store, Tx, UserRecord};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::credentials::{SESSION_PREFIX, hash_secret, new_secret};
use crate::error::{Error, Result};
use crate::session::{Lifetime, NewSession};

/// The most sign-ins sent to the provider kept at once.
pub const MAX_PENDING_LOGINS: i64 = 10_000;

/// How long a sign-in sent to the provider may take to come back.
pub const LOGIN_LIFETIME: Duration = Duration::minutes(10);

/// What a CLI's one-time code starts with.
const CLI_CODE_PREFIX: &str = "cnp_c_";

/// How many names `ann`, `ann-2`, ... are tried for a new account.
const NAME_TRIES: u32 = 50;

/// What a provider said about a person, from an ID token whose signature,
/// issuer, audience, expiry and nonce were checked (and from its userinfo).
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Microsoft Entra ID's `oid`: the person's id in the directory, the
    /// same for every application (its `sub` is not).
    pub object_id: Option<String>,
}

fn gone() -> Error {
    Error::Unauthenticated("this sign-in was used already or took too long; start again from the sign-in page".into())
}

/// Keep a sign-in sent to the provider under its `state` until it comes back.
pub async fn begin(store: &Store, now: OffsetDateTime, state: &str, login: PendingOidcLogin) -> Result<()> {
    let mut tx = store.write().await?;
    // anyone may start a sign-in: their number is bounded, not each one's life
    if tx.count_oidc_logins(now).await? >= MAX_PENDING_LOGINS {
        return Err(Error::Unavailable {
            detail: "too many sign-ins through the identity provider are under way; try again in a minute".into(),
            retry_after: 60,
        });
    }
    tx.insert_oidc_login(&hash_secret(state), &login, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Take back the sign-in sent under `state`, once: a second callback with
/// the same `state` (a replay) is refused, and so is one that came too late.
pub async fn resume(store: &Store, now: OffsetDateTime, state: &str) -> Result<PendingOidcLogin> {
    let mut tx = store.write().await?;
    let login = tx.take_oidc_login(&hash_secret(state)).await?;
    tx.commit().await?;
    match login {
        Some(l) if l.expires_at > now => Ok(l),
        _ => Err(gone()),
    }
}

/// Sign in the person the provider vouched for: their account, made on the
/// first sign-in (recorded in the history) with a verified e-mail's pending
/// invitations accepted (WS3); a deactivated account is refused (AC10).
pub async fn sign_in(
    store: &Store,
    now: OffsetDateTime,
    who: &OidcIdentity,
    lifetime: Lifetime,
) -> Result<(NewSession, UserRecord)> {
    let mut tx = store.write().await?;
    let user = resolve(&mut tx, now, who).await?;
    let session = new_session(&mut tx, &user, now, lifetime).await?;
    tx.commit().await?;
    Ok((session, user))
}

/// How long the CLI has to redeem the code its sign-in left.
pub const CLI_GRANT_LIFETIME: Duration = Duration::minutes(2);

/// The sign-in was started by `canopy login --sso`: leave the CLI a
/// one-time code that only the verifier of `challenge` redeems (`redeem`);
/// with the user name it signs in.
pub async fn grant_cli(
    store: &Store,
    now: OffsetDateTime,
    who: &OidcIdentity,
    challenge: &str,
) -> Result<(String, String)> {
    let mut tx = store.write().await?;
    let user = resolve(&mut tx, now, who).await?;
    let (code, hash) = new_secret(CLI_CODE_PREFIX)?;
    let grant = CliGrant { user_id: user.id, challenge: challenge.to_owned(), expires_at: now + CLI_GRANT_LIFETIME };
    tx.insert_cli_grant(&hash, &grant, now).await?;
    tx.commit().await?;
    Ok((code, user.username))
}

/// Redeem the CLI's one-time `code` with the PKCE `verifier` of the
/// challenge it was started with: a session token of `lifetime`. The code
/// is spent by the first attempt, right or wrong.
pub async fn redeem(
    store: &Store,
    now: OffsetDateTime,
    (code, verifier): (&str, &str),
    lifetime: Lifetime,
) -> Result<NewSession> {
    let refused = || Error::Unauthenticated("this sign-in code is wrong, was used already or has expired".into());
    // a code Canopy made: its prefix and 43 base64url characters; anything
    // else is refused before the database is asked
    let shaped = code
        .strip_prefix(CLI_CODE_PREFIX)
        .is_some_and(|c| c.len() == 43 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
    if !shaped || verifier.len() > 200 {
        return Err(refused());
    }
    // only a code that exists takes the writer (SQLite has one)
    if !store.read().await?.cli_grant_exists(&hash_secret(code)).await? {
        return Err(refused());
    }
    let grant = {
        let mut tx = store.write().await?;
        let grant = tx.take_cli_grant(&hash_secret(code)).await?;
        tx.commit().await?;
        grant.ok_or_else(refused)?
    };
    if grant.expires_at <= now || !same(&s256(verifier), &grant.challenge) {
        return Err(refused());
    }
    let mut tx = store.write().await?;
    let user = tx.user_by_id(grant.user_id).await?.filter(|u| u.active).ok_or_else(refused)?;
    let session = new_session(&mut tx, &user, now, lifetime).await?;
    tx.commit().await?;
    Ok(session)
}

/// The PKCE challenge (S256) of `verifier`: base64url of its SHA-256.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The account of `who`, made on their first sign-in; refused when
/// deactivated; a verified address's pending invitations accepted.
async fn resolve(tx: &mut Tx, now: OffsetDateTime, who: &OidcIdentity) -> Result<UserRecord> {
    let user = match tx.user_by_identity(&who.issuer, &who.subject).await? {
        Some(u) => u,
        None => match provisioned_account(tx, who).await? {
            Some((u, matched_by)) => link(tx, now, who, u, matched_by).await?,
            None => first_sign_in(tx, now, who).await?,
        },
    };
    if !user.active {
        return Err(Error::Forbidden(format!(
            "the account {} is deactivated; ask an admin of Canopy to reactivate it",
            user.username
        )));
    }
    // an address the provider did not verify could be anyone's: it claims no invitation
    let verified = who.email.as_deref().filter(|_| who.email_verified).and_then(|e| Email::parse(e).ok());
    if verified.is_some_and(|e| e.as_str() == user.email) {
        crate::session::accept_invitations(tx, &user, now).await?;
    }
    Ok(user)
}

async fn new_session(tx: &mut Tx, user: &UserRecord, now: OffsetDateTime, lifetime: Lifetime) -> Result<NewSession> {
    let (token, hash) = new_secret(SESSION_PREFIX)?;
    let expires_at = now + lifetime.absolute;
    tx.insert_session(&hash, user.id, now, expires_at, lifetime.idle.map(|idle| now + idle)).await?;
    tx.delete_expired_sessions(now).await?;
    Ok(NewSession { token, expires_at })
}

/// The account SCIM provisioned for the person `who` names, and by what:
/// its `externalId` is the token's subject (Okta) or Entra ID's object id
/// `oid` (when the directory's object id is mapped to `externalId`); or its
/// `userName` is the token's `preferred_username` *and* its address the
/// one the provider verified for the person (`preferred_username` alone may
/// be changed by the person at some providers, and is not unique).
/// An `externalId` two accounts share links neither.
async fn provisioned_account(tx: &mut Tx, who: &OidcIdentity) -> Result<Option<(UserRecord, &'static str)>> {
    let ids = [Some(&who.subject), who.object_id.as_ref()];
    for id in ids.into_iter().flatten() {
        let found = tx.scim_users(&ScimUserQuery::ExternalId(id.clone()), 0, 2).await?;
        match found.as_slice() {
            [] => continue,
            [only] => return Ok(Some((only.user.clone(), "externalId"))),
            _ => {
                return Err(Error::conflict(format!(
                    "several accounts were provisioned with the externalId {id:?}; ask an admin of Canopy"
                )));
            }
        }
    }
    let Some(name) = who.preferred_username.as_deref().filter(|n| !n.trim().is_empty()) else { return Ok(None) };
    let verified = who.email.as_deref().filter(|_| who.email_verified).and_then(|e| Email::parse(e).ok());
    let by_name = tx.scim_users(&ScimUserQuery::UserName(name.to_owned()), 0, 1).await?;
    match by_name.into_iter().next() {
        None => Ok(None),
        Some(u) if verified.as_ref().is_some_and(|e| e.as_str() == u.user.email) => Ok(Some((u.user, "userName"))),
        // the same login at the same provider, not vouched for: neither linked nor made twice
        Some(u) => Err(Error::Conflict {
            detail: format!(
                "an account was provisioned for the user name {name}, but the identity provider did not vouch for \
                 its e-mail address {}; ask an admin of Canopy",
                u.user.email
            ),
            field: None,
        }),
    }
}

/// Make a provisioned account the person's: from now on the provider's
/// (issuer, subject) names it. An account already signing in through this
/// provider as somebody else is not taken over.
async fn link(
    tx: &mut Tx,
    now: OffsetDateTime,
    who: &OidcIdentity,
    user: UserRecord,
    matched_by: &str,
) -> Result<UserRecord> {
    if tx.identity_issuers(user.id).await?.contains(&who.issuer) {
        return Err(Error::Conflict {
            detail: format!(
                "the account {} signs in through this identity provider as another person already; ask an admin \
                 of Canopy",
                user.username
            ),
            field: None,
        });
    }
    tx.insert_identity(&who.issuer, &who.subject, user.id, now).await?;
    let by = Initiator { kind: InitiatorKind::User, id: user.id.to_string(), name: user.username.clone() };
    let linked = IdentityLinked {
        user: user.username.clone(),
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
        matched_by: matched_by.to_owned(),
    };
    tx.record(None, now, &by, linked.into())?;
    // the provider vouched for the address SCIM gave: its invitations are theirs (WS3)
    if user.active {
        crate::session::accept_invitations(tx, &user, now).await?;
    }
    Ok(user)
}

/// Make the account of a person the provider names for the first time.
async fn first_sign_in(tx: &mut Tx, now: OffsetDateTime, who: &OidcIdentity) -> Result<UserRecord> {
    let refused = |why: String| Error::Forbidden(format!("Canopy cannot make an account from this sign-in: {why}"));
    let raw_email = who.email.as_deref().ok_or_else(|| {
        refused("the identity provider gave no e-mail address (ask for the `email` scope's claims)".into())
    })?;
    let email = Email::parse(raw_email).map_err(|e| refused(format!("its e-mail address {e}")))?;
    // an address the provider did not verify could be anyone's: an account
    // holding it would receive that address's invitations and block its owner
    if !who.email_verified {
        return Err(refused(format!("the identity provider has not verified the e-mail address {email}")));
    }
    if tx.user_by_email(email.as_str()).await?.is_some() {
        // never matched by e-mail alone: the address may not be theirs
        return Err(Error::Conflict {
            detail: format!(
                "an account with the e-mail address {email} exists already and was not made by this identity \
                 provider; ask an admin of Canopy to change that account's e-mail address, or to remove it"
            ),
            field: None,
        });
    }
    let name_of = |claim: &Option<String>| -> String {
        claim.as_deref().and_then(|n| PersonName::parse(n.trim()).ok()).map(PersonName::into_string).unwrap_or_default()
    };
    let (first_name, last_name) = (name_of(&who.given_name), name_of(&who.family_name));
    let local_part = email.as_str().split('@').next().unwrap_or_default().to_owned();
    let hint = who.preferred_username.clone().filter(|p| !p.trim().is_empty()).unwrap_or(local_part);
    let mut username = None;
    for n in 1..=NAME_TRIES {
        let Some(candidate) = Username::from_hint(&hint, n).or_else(|| Username::from_hint("user", n)) else { break };
        if tx.user_by_username(candidate.as_str()).await?.is_none() {
            username = Some(candidate);
            break;
        }
    }
    let username = username.ok_or_else(|| refused(format!("every user name made from {hint:?} is taken")))?;
    let no_roles = Default::default();
    let user = tx
        .insert_user(
            NewUser {
                username: username.as_str(),
                email: email.as_str(),
                first_name: &first_name,
                last_name: &last_name,
                password_hash: None,
                installation_roles: &no_roles,
            },
            now,
        )
        .await?;
    tx.insert_identity(&who.issuer, &who.subject, user.id, now).await?;
    let by = Initiator { kind: InitiatorKind::User, id: user.id.to_string(), name: user.username.clone() };
    let signed_up = UserSignedUp {
        user: user.username.clone(),
        email: user.email.clone(),
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
    };
    tx.record(None, now, &by, signed_up.into())?;
    Ok(user)
}
