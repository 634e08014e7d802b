//! Signing in and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{Me, MyProject, MyWorkspace, Problem, SsoTokenRequest, TokenRequest, TokenResponse};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ClientAddress};
use crate::mapping::to_expiring;
use crate::routes::to_user;

/// Sign in with a local account and get a session token.
///
/// Attempts are throttled per account at this address, per account and per
/// address (SE2, `canopy_domain::signin`): a locked attempt answers 429 with
/// `Retry-After` without its password being checked, alike for known and
/// unknown usernames; the account's owner at an address they signed in from
/// before passes an account-wide lock. Too many sign-ins at once answer 503
/// with `Retry-After` (SE1). Where passwords are left to admins
/// (`--local-sign-in admins`), anyone else is answered like a wrong password.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let now = app.clock.now();
    let credentials = (body.username.as_str(), body.password);
    let policy = (app.config.api_lifetime(), app.config.local_sign_in);
    let signed_in = canopy_app::session::sign_in(&app.store, &app.passwords, now, client, credentials, policy).await;
    match &signed_in {
        Err(canopy_app::Error::Unauthenticated(_)) => app.metrics.sign_in_failed(),
        Err(canopy_app::Error::TooManyRequests { .. }) => app.metrics.sign_in_throttled(false),
        Err(canopy_app::Error::Unavailable { .. }) => app.metrics.sign_in_throttled(true),
        _ => {}
    }
    let session = signed_in?;
    Ok(Json(TokenResponse { token: session.token, token_type: "Bearer".into(), expires_at: session.expires_at }))
}

/// Redeem the one-time code a sign-in through the identity provider left
/// for `canopy login --sso` (ID1) for a session token: with the PKCE
/// verifier of the challenge the CLI started it with, once, within two
/// minutes. A wrong verifier spends the code too.
#[utoipa::path(post, path = "/api/v1/auth/sso/token", tag = "auth", request_body = SsoTokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn redeem_sso_code(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<SsoTokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let now = app.clock.now();
    let redeemed =
        canopy_app::sso::redeem(&app.store, now, (&body.code, &body.verifier), app.config.api_lifetime()).await;
    if let Err(canopy_app::Error::Unauthenticated(_)) = &redeemed {
        app.metrics.sign_in_failed();
    }
    let session = redeemed?;
    Ok(Json(TokenResponse { token: session.token, token_type: "Bearer".into(), expires_at: session.expires_at }))
}

/// Sign out: end the session of the bearer token (SE6). An API key is not a
/// session: revoke it with `DELETE /api/v1/api-keys/{id}`.
#[utoipa::path(delete, path = "/api/v1/auth/token", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_token(State(app): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    canopy_app::session::sign_out(&app.store, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller: account, installation roles, workspaces and effective project
/// access, and, for workspace managers, bindings that expire soon (AC12) and
/// how many four-eye requests wait for their decision (FE2).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let me = canopy_app::me::me(&app.store, &caller, app.clock.now()).await?;
    Ok(Json(Me {
        kind: if caller.actor.is_user() { "user" } else { "api_key" }.into(),
        name: caller.actor.name.clone(),
        user: me.user.map(to_user),
        installation_roles: caller.actor.installation_roles.iter().map(|r| r.as_str().to_owned()).collect(),
        workspaces: me
            .workspaces
            .into_iter()
            .map(|w| MyWorkspace {
                identifier: w.workspace.identifier,
                display_name: w.workspace.display_name,
                role: w.role.as_str().into(),
                requests_to_decide: w.requests_to_decide,
            })
            .collect(),
        projects: me
            .projects
            .into_iter()
            .map(|p| MyProject { workspace: p.workspace, project: p.project, roles: p.roles })
            .collect(),
        notices: me.notices.into_iter().map(to_expiring).collect(),
    }))
}
