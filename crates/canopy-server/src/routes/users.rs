//! Users: local accounts, their installation roles, deactivation (AC10).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateUser, Page, Problem, SessionsEnded, UpdateUser, User};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::names::check_password;
use canopy_domain::signin;
use canopy_domain::{Email, InstallationRole, InvalidValue, PersonName, SearchTerm, Subject, SubjectKind, Username};
use canopy_store::{NewUser, UserChanges};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::{Admission, Caller, hash_password_admitted, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery, ClientAddress};
use crate::routes::members::{Removal, end_membership};
use crate::routes::requests::close_pending;
use crate::routes::session::{count_attempt, count_success};
use crate::routes::{check_limit, decode_cursor, load_user, page, to_user};
use crate::validate;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Matches username, e-mail, first and last name.
    #[param(max_length = 100)]
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub(crate) fn is_active_admin(u: &canopy_store::UserRecord) -> bool {
    u.active && u.installation_roles.contains(&InstallationRole::Admin)
}

/// Refuse a change that would leave the installation without an active admin
/// (also when made through an admin's own API key).
pub(crate) async fn keep_an_admin(tx: &mut canopy_store::Tx) -> ApiResult<()> {
    // lock every admin's row first, so two admins removing each other wait in turn
    tx.lock_admins().await?;
    if tx.count_active_admins().await? <= 1 {
        return Err(ApiError::conflict("the installation must keep at least one active admin"));
    }
    Ok(())
}

fn parse_roles(raw: &[String]) -> Result<BTreeSet<InstallationRole>, InvalidValue> {
    raw.iter().map(|r| r.parse()).collect()
}

/// List users (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<User>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<Page<User>>> {
    caller.require(Action::AdministerUsers)?;
    let limit = check_limit(q.limit)?;
    let cursor = decode_cursor(q.cursor.as_deref())?;
    let term = match q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(raw) => Some(SearchTerm::parse(raw).map_err(|e| ApiError::invalid("q", e.0))?),
        None => None,
    };
    let mut tx = app.store.read().await?;
    let rows = tx.list_users(term.as_ref().map(SearchTerm::as_str), cursor.as_deref(), limit).await?;
    Ok(Json(page(rows, limit, |u| u.username.clone(), to_user)))
}

/// Create a local account (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require(Action::AdministerUsers)?;
    validate! {
        username: "username" => Username::parse(&body.username),
        email: "email" => Email::parse(&body.email),
        first_name: "first_name" => PersonName::parse(&body.first_name),
        last_name: "last_name" => PersonName::parse(&body.last_name),
        _password: "password" => body.password.as_deref().map(check_password).transpose(),
        roles: "installation_roles" => parse_roles(&body.installation_roles),
    }
    let hash = match body.password {
        Some(p) => Some(app.passwords.hash(p).await?),
        None => None,
    };
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    if tx.user_by_username(username.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("username", format!("user {username} already exists")));
    }
    if tx.user_by_email(email.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("email", format!("another user has the e-mail address {email}")));
    }
    let user = tx
        .insert_user(
            NewUser {
                username: username.as_str(),
                email: email.as_str(),
                first_name: first_name.as_str(),
                last_name: last_name.as_str(),
                password_hash: hash.as_deref(),
                installation_roles: &roles,
            },
            now,
        )
        .await?;
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    tx.append_event(
        None,
        EventKind::UserCreated,
        now,
        &caller.initiator(),
        json!({"user": user.username, "email": user.email, "installation_roles": roles}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_user(user))))
}

/// Show a user (admins, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])), responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(username): Path<String>) -> ApiResult<Json<User>> {
    if !(caller.actor.is_user() && caller.actor.name == username) {
        caller.require(Action::AdministerUsers)?;
    }
    let mut tx = app.store.read().await?;
    Ok(Json(to_user(load_user(&mut tx, &username).await?)))
}

/// Change a user. Admins change anything; users change their own names and
/// password, giving the current one (`current_password`, SE6; wrong guesses
/// are throttled like sign-ins). A new password ends every session of the
/// account. `{"active": false}` deactivates: the account loses all access
/// at once and its sessions end (AC10).
#[utoipa::path(patch, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    ClientAddress(client): ClientAddress,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let is_self = caller.actor.is_user() && caller.actor.name == username;
    let admin_fields = body.email.is_some() || body.active.is_some() || body.installation_roles.is_some();
    if !is_self || admin_fields {
        caller.require(Action::AdministerUsers)?;
    }
    validate! {
        email: "email" => body.email.as_deref().map(Email::parse).transpose(),
        first_name: "first_name" => body.first_name.as_deref().map(PersonName::parse).transpose(),
        last_name: "last_name" => body.last_name.as_deref().map(PersonName::parse).transpose(),
        _password: "password" => body.password.as_deref().map(check_password).transpose(),
        roles: "installation_roles" => body.installation_roles.as_deref().map(parse_roles).transpose(),
    }
    if is_self && body.active == Some(false) {
        return Err(ApiError::invalid("active", "you cannot deactivate your own account"));
    }
    if is_self && roles.as_ref().is_some_and(|r| !r.contains(&InstallationRole::Admin)) {
        return Err(ApiError::invalid("installation_roles", "you cannot take the admin role from yourself"));
    }
    let now = app.clock.now();
    if body.current_password.is_some() && body.password.is_none() {
        return Err(ApiError::invalid("current_password", "is only for changing the password"));
    }
    let password_hash = match body.password {
        Some(p) => {
            let mut admission = app.passwords.admit().await?;
            if is_self {
                admission =
                    check_current_password(&app, admission, client, &username, body.current_password, now).await?;
            }
            Some(hash_password_admitted(admission, p).await?)
        }
        None => None,
    };
    let mut tx = app.store.write().await?;
    let before = load_user(&mut tx, &username).await?;
    if let Some(e) = &email
        && let Some(other) = tx.user_by_email(e.as_str()).await?
        && other.id != before.id
    {
        return Err(ApiError::conflict_on("email", format!("another user has the e-mail address {e}")));
    }
    let changes = UserChanges {
        email: email.map(Email::into_string),
        first_name: first_name.map(PersonName::into_string),
        last_name: last_name.map(PersonName::into_string),
        password_hash,
        active: body.active,
        installation_roles: roles,
    };
    let stays_admin = changes.active.unwrap_or(before.active)
        && changes.installation_roles.as_ref().unwrap_or(&before.installation_roles).contains(&InstallationRole::Admin);
    if is_active_admin(&before) && !stays_admin {
        keep_an_admin(&mut tx).await?;
    }
    tx.update_user(before.id, &changes).await?;
    let after = load_user(&mut tx, &username).await?;
    let initiator = caller.initiator();
    if changes.password_hash.is_some() || !after.active {
        tx.delete_sessions_of(after.id).await?;
    }
    let role_names = |u: &canopy_store::UserRecord| u.installation_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
    let details = json!({
        "user": after.username,
        "old": {"email": before.email, "first_name": before.first_name, "last_name": before.last_name,
                "active": before.active, "installation_roles": role_names(&before)},
        "new": {"email": after.email, "first_name": after.first_name, "last_name": after.last_name,
                "active": after.active, "installation_roles": role_names(&after)},
        "password_changed": changes.password_hash.is_some(),
    });
    let kind = match (before.active, after.active) {
        (true, false) => EventKind::UserDeactivated,
        (false, true) => EventKind::UserReactivated,
        _ => EventKind::UserUpdated,
    };
    if kind != EventKind::UserUpdated {
        // Each workspace where the person is a member sees that their access ended or resumed.
        for (ws, _) in tx.direct_memberships(SubjectKind::User, after.id).await? {
            tx.append_event(Some(ws), kind, now, &initiator, json!({"user": after.username})).await?;
        }
    }
    // the installation chain last: see canopy_store::Tx::append_event
    tx.append_event(None, kind, now, &initiator, details).await?;
    tx.commit().await?;
    Ok(Json(to_user(after)))
}

/// Delete a user (admins). Their memberships and bindings end with the account.
#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerUsers)?;
    if caller.actor.is_user() && caller.actor.name == username {
        return Err(ApiError::invalid("user", "you cannot delete your own account"));
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let user = load_user(&mut tx, &username).await?;
    // rows before history chains, and the admins' rows before any one user's,
    // in the order every other path takes them
    if is_active_admin(&user) {
        keep_an_admin(&mut tx).await?;
    }
    tx.lock_user(user.id).await?;
    // requests naming the person or filed by them close, saying why (finding 17)
    let memberships = tx.direct_memberships(SubjectKind::User, user.id).await?;
    let why = "the account of its subject or requester was deleted";
    let also = memberships.iter().map(|(ws, _)| *ws);
    close_pending(&mut tx, Subject::user(user.id), Some(user.id), also, &caller, why, now).await?;
    let initiator = caller.initiator();
    let name = format!("user:{}", user.username);
    for (ws, role) in memberships {
        let subject = Subject::user(user.id);
        let removal = Removal { initiator: &initiator, reason: "account deleted", now };
        end_membership(&mut tx, ws, subject, &name, role, &removal).await?;
    }
    tx.delete_user(user.id).await?;
    tx.append_event(None, EventKind::UserDeleted, now, &initiator, json!({"user": user.username, "email": user.email}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuse a self-service password change unless `current` is the account's
/// password now (SE6). The attempt is counted and throttled exactly like a
/// sign-in of the account from this address, so a stolen session cannot
/// guess it faster than a guesser at the sign-in form. The admission comes
/// back for hashing the new password.
async fn check_current_password(
    app: &AppState,
    admission: Admission,
    client: std::net::IpAddr,
    username: &str,
    current: Option<String>,
    now: time::OffsetDateTime,
) -> ApiResult<Admission> {
    let Some(current) = current else {
        return Err(ApiError::invalid("current_password", "is required to change your own password"));
    };
    let keys = signin::keys(username, client);
    let user = count_attempt(app, &keys, username, now).await?;
    let hash = user.and_then(|u| u.password_hash);
    let (ok, admission) = verify_password(admission, current, hash).await;
    if !ok {
        return Err(ApiError::invalid("current_password", "is not your password"));
    }
    let mut tx = app.store.write().await?;
    count_success(&mut tx, &keys, now).await?;
    tx.commit().await?;
    admission.ok_or_else(|| ApiError::Internal("the hashing task failed".into()))
}

/// Sign out everywhere: end every session of a user (the user themself, or
/// admins; recorded in the history).
#[utoipa::path(delete, path = "/api/v1/users/{user}/sessions", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])),
    responses((status = 200, body = SessionsEnded), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn end_sessions(
    State(app): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    if !(caller.actor.is_user() && caller.actor.name == username) {
        caller.require(Action::AdministerUsers)?;
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let user = load_user(&mut tx, &username).await?;
    let ended = tx.delete_sessions_of(user.id).await?;
    tx.append_event(
        None,
        EventKind::SessionsEnded,
        now,
        &caller.initiator(),
        json!({"user": user.username, "sessions_ended": ended}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(SessionsEnded { sessions_ended: ended }))
}
