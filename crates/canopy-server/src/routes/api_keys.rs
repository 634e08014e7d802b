//! API keys: service accounts for automation, scoped to a workspace or the installation (ID3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{ApiKey, CreateApiKey, CreatedApiKey, Page, Problem};
use canopy_domain::authz::{Action, action_to_hold};
use canopy_domain::history::EventKind;
use canopy_domain::{DisplayName, InstallationRole, WorkspaceRole};
use canopy_store::{ApiKeyRecord, NewApiKey};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::{API_KEY_PREFIX, Caller, new_secret};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{check_limit, decode_cursor, load_workspace, page};

fn to_key(k: ApiKeyRecord) -> ApiKey {
    ApiKey {
        id: k.id,
        name: k.name,
        scope: if k.workspace_id.is_some() { "workspace" } else { "installation" }.into(),
        workspace: k.workspace_identifier,
        role: k.role,
        created_by: k.created_by,
        created_at: k.created_at,
        expires_at: k.expires_at,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyQuery {
    /// Every key scoped to this workspace, whoever made it (its managers).
    pub workspace: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The caller's API keys (admins: every key); with `?workspace=`, every key
/// scoped to that workspace, for its managers.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(ApiKeyQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<ApiKey>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ApiKeyQuery>,
) -> ApiResult<Json<Page<ApiKey>>> {
    if !caller.actor.is_user() {
        return Err(ApiError::Forbidden("API keys are managed by people, not by API keys".into()));
    }
    let limit = check_limit(q.limit)?;
    let cursor = decode_cursor(q.cursor.as_deref())?;
    let mut tx = app.store.read().await?;
    let rows = match &q.workspace {
        Some(ws) => {
            let ws = load_workspace(&mut tx, ws).await?;
            caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
            tx.list_api_keys(None, Some(ws.id), cursor.as_deref(), limit).await?
        }
        None => {
            let owner = if caller.actor.is_admin() { None } else { Some(caller.actor.id) };
            tx.list_api_keys(owner, None, cursor.as_deref(), limit).await?
        }
    };
    Ok(Json(page(rows, limit, |k| k.id.to_string(), to_key)))
}

/// Create an API key. Its secret is in the answer, once.
///
/// A workspace key (`workspace` given) holds `workspace_manager` or
/// `workspace_member` there, at most the creator's own role. An installation
/// key (admins only) holds `admin` or `platform_engineer`.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKey, security(("bearer" = [])),
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    if !caller.actor.is_user() {
        return Err(ApiError::Forbidden("API keys are created by people, not by API keys".into()));
    }
    let name = DisplayName::parse(&body.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    let now = app.clock.now();
    if let Some(e) = body.expires_at {
        canopy_domain::access::check_new_expiry(e, now).map_err(|e| ApiError::invalid("expires_at", e.to_string()))?;
    }
    let mut tx = app.store.write().await?;
    let workspace = match &body.workspace {
        Some(w) => Some(
            load_workspace(&mut tx, w)
                .await
                .map_err(|_| ApiError::invalid("workspace", format!("workspace {w:?} does not exist")))?,
        ),
        None => None,
    };
    let role = match &workspace {
        Some(ws) => {
            let role: WorkspaceRole =
                body.role.parse().map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("role", e.to_string()))?;
            if role == WorkspaceRole::Owner {
                return Err(ApiError::invalid("role", "a key can be workspace_manager or workspace_member"));
            }
            caller.require_in(&mut tx, ws, action_to_hold(role)).await?;
            role.as_str()
        }
        None => {
            let role: InstallationRole =
                body.role.parse().map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("role", e.to_string()))?;
            caller.require(Action::CreateInstallationKey)?;
            role.as_str()
        }
    };
    let (secret, hash) = new_secret(API_KEY_PREFIX)?;
    let key = tx
        .insert_api_key(
            NewApiKey {
                name: name.as_str(),
                token_hash: &hash,
                workspace_id: workspace.as_ref().map(|w| w.id),
                role,
                created_by_id: Some(caller.actor.id),
                created_by: &caller.actor.name,
                expires_at: body.expires_at,
            },
            now,
        )
        .await?;
    let details =
        json!({"key": key.id, "name": key.name, "role": role, "expires_at": crate::routes::rfc3339(body.expires_at)});
    tx.append_event(workspace.as_ref().map(|w| w.id), EventKind::ApiKeyCreated, now, &caller.initiator(), details)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: to_key(key), secret })))
}

/// Delete an API key (its creator, or admins). It stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found(format!("API key {id:?} does not exist"));
    if !caller.actor.is_user() {
        return Err(ApiError::Forbidden("API keys are managed by people, not by API keys".into()));
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let key = tx.api_key(&id).await?.ok_or_else(not_found)?;
    // its creator, admins, and the managers of the key's workspace may delete it
    let mut allowed = key.created_by_id == Some(caller.actor.id) || caller.actor.is_admin();
    if !allowed
        && let Some(workspace_id) = key.workspace_id
        && let Some(ws) = tx.workspace_by_id(workspace_id).await?
    {
        allowed = caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await.is_ok();
    }
    if !allowed {
        return Err(not_found());
    }
    tx.delete_api_key(key.id).await?;
    tx.append_event(
        key.workspace_id,
        EventKind::ApiKeyDeleted,
        now,
        &caller.initiator(),
        json!({"key": key.id, "name": key.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
