//! Signing in and who am I.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{Me, MyProject, MyWorkspace, Problem, TokenRequest, TokenResponse};
use canopy_domain::access::{UserStatus, effective_project_roles};
use canopy_domain::authz::ActorKind;
use canopy_domain::{SubjectKind, WorkspaceRole};
use canopy_store::{Tx, UserRecord};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddress};
use crate::routes::to_user;

/// Sign in with a local account and get a session token.
///
/// Attempts are throttled per account at this address, per account and per
/// address (SE2, `canopy_domain::signin`): a locked attempt answers 429 with
/// `Retry-After` without its password being checked, alike for known and
/// unknown usernames; the account's owner at an address they signed in from
/// before passes an account-wide lock. Too many sign-ins at once answer 503
/// with `Retry-After` (SE1).
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
    let session =
        canopy_app::session::sign_in(&app.store, &app.passwords, now, client, credentials, app.config.session_ttl)
            .await?;
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

/// AC12: the bindings of a workspace that expire within 7 days.
async fn soon_expiring(
    tx: &mut canopy_store::Tx,
    ws: uuid::Uuid,
    now: time::OffsetDateTime,
) -> ApiResult<Vec<canopy_api_types::ExpiringAccess>> {
    let until = now + canopy_domain::access::EXPIRING_SOON;
    let rows = tx.expiring_bindings(Some(ws), until, Some((now, uuid::Uuid::max())), NOTICES as i64).await?;
    Ok(rows.into_iter().filter_map(|(b, w, p)| crate::mapping::to_expiring(b, w, p, now)).collect())
}

/// At most this many expiry notices on `GET /api/v1/me`.
const NOTICES: usize = 50;

/// The caller: account, installation roles, workspaces and effective project
/// access, and, for workspace managers, bindings that expire soon (AC12) and
/// how many four-eye requests wait for their decision (FE2).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    let roles: Vec<String> = caller.actor.installation_roles.iter().map(|r| r.as_str().to_owned()).collect();
    let mut me = Me {
        kind: if caller.actor.is_user() { "user" } else { "api_key" }.into(),
        name: caller.actor.name.clone(),
        user: None,
        installation_roles: roles,
        workspaces: vec![],
        projects: vec![],
        notices: vec![],
    };
    match caller.actor.kind {
        ActorKind::User => {
            let user = tx
                .user_by_id(caller.actor.id)
                .await?
                .ok_or_else(|| ApiError::Unauthenticated("account is gone".into()))?;
            let workspaces = tx.list_workspaces(Some(user.id), None, u32::MAX - 1).await?;
            for ws in &workspaces {
                let role = WorkspaceRole::strongest(tx.membership_roles_of_user(ws.id, user.id).await?);
                if let Some(role) = role {
                    let mut requests_to_decide = 0;
                    if role >= WorkspaceRole::Manager {
                        me.notices.extend(soon_expiring(&mut tx, ws.id, now).await?);
                        requests_to_decide = tx.count_requests_to_decide(ws.id, user.id).await?;
                    }
                    me.workspaces.push(MyWorkspace {
                        identifier: ws.identifier.clone(),
                        display_name: ws.display_name.clone(),
                        role: role.as_str().into(),
                        requests_to_decide,
                    });
                }
            }
            me.projects = my_projects(&mut tx, &user, now).await?;
            me.notices.sort_by_key(|n| n.expires_at);
            me.notices.truncate(NOTICES);
            me.user = Some(to_user(user));
        }
        ActorKind::WorkspaceKey { workspace_id, role } => {
            if let Some(ws) = tx.workspace_by_id(workspace_id).await? {
                me.workspaces.push(MyWorkspace {
                    identifier: ws.identifier,
                    display_name: ws.display_name,
                    role: role.as_str().into(),
                    requests_to_decide: 0,
                });
            }
        }
        ActorKind::InstallationKey => {}
    }
    Ok(Json(me))
}

/// The projects where `user` effectively holds roles at `now` (AC2, AC3, AC10).
async fn my_projects(tx: &mut Tx, user: &UserRecord, now: time::OffsetDateTime) -> ApiResult<Vec<MyProject>> {
    let records = tx.bindings_reaching_user(user.id).await?;
    let groups: BTreeSet<_> =
        records.iter().filter(|r| r.binding.subject.kind == SubjectKind::Group).map(|r| r.binding.subject.id).collect();
    let memberships = tx.group_memberships(&groups).await?;
    let bindings: Vec<_> = records.iter().map(|r| r.binding.clone()).collect();
    let role_names: BTreeMap<_, _> = records.iter().map(|r| (r.binding.role_id, r.role_identifier.clone())).collect();
    let status = [UserStatus { id: user.id, active: user.active }];
    let mut out = Vec::new();
    let mut by_project: BTreeMap<uuid::Uuid, Vec<canopy_domain::Binding>> = BTreeMap::new();
    for b in bindings {
        by_project.entry(b.project_id).or_default().push(b);
    }
    for (project_id, bs) in by_project {
        let eff = effective_project_roles(&bs, &memberships, &status, now);
        let Some(roles) = eff.get(&user.id) else { continue };
        let Some(project) = tx.project_by_id(project_id).await? else { continue };
        let Some(ws) = tx.workspace_by_id(project.workspace_id).await? else { continue };
        out.push(MyProject {
            workspace: ws.identifier,
            project: project.identifier,
            roles: roles.iter().filter_map(|r| role_names.get(r).cloned()).collect(),
        });
    }
    out.sort_by(|a, b| (&a.workspace, &a.project).cmp(&(&b.workspace, &b.project)));
    Ok(out)
}
