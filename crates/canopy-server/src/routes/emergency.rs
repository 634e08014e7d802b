//! Emergency access (AD3, AD4): the use cases of [`canopy_app::emergency`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{
    EmergencyGrant, EmergencyGrantResult, EmergencyRevocation, EmergencyRevoke, Problem, RevokedApiKey,
    RevokedAssignment, RevokedBinding, RevokedMembership, RevokedTenant, VoidedRequest,
};
use canopy_app::emergency::{self as uc, GrantInput, RevocationReport, RevokeInput};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path};

/// Grant a person emergency access (AD3): made a member of the workspace
/// when they are not, and bound to the project with the role until the
/// mandatory expiration, bypassing four-eye approval; in one transaction,
/// and replicated before other work. Admins, or managers of the workspace.
#[utoipa::path(post, path = "/api/v1/admin/emergency/grant", tag = "admin", request_body = EmergencyGrant,
    security(("bearer" = [])),
    responses((status = 201, body = EmergencyGrantResult), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn grant(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EmergencyGrant>,
) -> ApiResult<(StatusCode, Json<EmergencyGrantResult>)> {
    let input = GrantInput {
        user: body.user,
        email: body.email,
        workspace: body.workspace,
        project: body.project,
        role: body.role,
        expires_at: body.expires_at,
        justification: body.justification,
    };
    let g = uc::grant(&app.store, &caller, app.clock.now(), input).await?;
    Ok((
        StatusCode::CREATED,
        Json(EmergencyGrantResult {
            user: g.user,
            workspace: g.workspace,
            project: g.project,
            role: g.role,
            expires_at: g.expires_at,
            binding: g.binding,
            member_added: g.member_added,
        }),
    ))
}

/// Revoke everything a person holds, at once (AD4): the account is
/// deactivated (its sessions end; it leaves every tenant before other
/// replication work), and every workspace membership, group membership and
/// project binding ends, in one transaction. Admins only. The answer lists
/// what was removed, and per tenant when the platform confirmed it (see also
/// `GET /api/v1/admin/emergency/revocations/{id}`).
#[utoipa::path(post, path = "/api/v1/admin/emergency/revoke", tag = "admin", request_body = EmergencyRevoke,
    security(("bearer" = [])),
    responses((status = 201, body = EmergencyRevocation), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EmergencyRevoke>,
) -> ApiResult<(StatusCode, Json<EmergencyRevocation>)> {
    let input = RevokeInput { user: body.user, email: body.email, justification: body.justification };
    let report = uc::revoke(&app.store, &caller, app.clock.now(), input).await?;
    Ok((StatusCode::CREATED, Json(to_revocation(report))))
}

/// An emergency revocation: what it removed, and per tenant when the
/// platform confirmed each removal so far (admins).
#[utoipa::path(get, path = "/api/v1/admin/emergency/revocations/{id}", tag = "admin",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = EmergencyRevocation), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EmergencyRevocation>> {
    Ok(Json(to_revocation(uc::revocation(&app.store, &caller, &id).await?)))
}

fn to_revocation(report: RevocationReport) -> EmergencyRevocation {
    let RevocationReport { record: r, confirmed } = report;
    let mut tenants: Vec<RevokedTenant> = Vec::new();
    for h in r.held {
        let assignment = RevokedAssignment {
            confirmed_at: confirmed.get(&(h.tenant_id, h.platform_role.clone())).copied(),
            platform_role: h.platform_role,
        };
        match tenants.last_mut() {
            Some(t) if t.workspace == h.workspace && t.project == h.project && t.platform == h.platform => {
                t.assignments.push(assignment);
            }
            _ => tenants.push(RevokedTenant {
                workspace: h.workspace,
                project: h.project,
                platform: h.platform,
                external_id: h.external_id,
                assignments: vec![assignment],
                revoked_at: None,
            }),
        }
    }
    for t in &mut tenants {
        let times: Option<Vec<_>> = t.assignments.iter().map(|a| a.confirmed_at).collect();
        t.revoked_at = times.and_then(|times| times.into_iter().max());
    }
    let list = |key: &str| r.removed[key].as_array().cloned().unwrap_or_default();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    EmergencyRevocation {
        id: r.id,
        user: r.username,
        justification: r.justification,
        initiator: r.initiator,
        requested_at: r.requested_at,
        deactivated: true,
        memberships: list("memberships")
            .iter()
            .map(|m| RevokedMembership { workspace: text(m, "workspace"), role: text(m, "role") })
            .collect(),
        groups: list("groups").iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        bindings: list("bindings")
            .iter()
            .map(|b| RevokedBinding {
                workspace: text(b, "workspace"),
                project: text(b, "project"),
                role: text(b, "role"),
            })
            .collect(),
        requests: list("requests")
            .iter()
            .filter_map(|q| {
                Some(VoidedRequest {
                    id: q["id"].as_str().and_then(|id| Uuid::parse_str(id).ok())?,
                    workspace: text(q, "workspace"),
                    project: text(q, "project"),
                    subject: text(q, "subject"),
                    role: text(q, "role"),
                    kind: text(q, "kind"),
                })
            })
            .collect(),
        api_keys: list("api_keys")
            .iter()
            .filter_map(|k| {
                Some(RevokedApiKey {
                    id: k["id"].as_str().and_then(|id| Uuid::parse_str(id).ok())?,
                    name: text(k, "name"),
                    workspace: k["workspace"].as_str().map(str::to_owned),
                })
            })
            .collect(),
        complete: tenants.iter().all(|t| t.revoked_at.is_some()),
        tenants,
    }
}
