//! API keys: service accounts for automation, scoped to a workspace or the
//! installation (ID3); the use cases are in [`canopy_app::api_keys`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{ApiKey, CreateApiKey, CreatedApiKey, Page, Problem};
use canopy_app::api_keys::{self as uc, NewApiKeyInput};
use canopy_app::paging::Paging;
use canopy_store::ApiKeyRecord;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::to_page;

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
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(to_page(uc::list(&app.store, &caller, q.workspace.as_deref(), &paging).await?, to_key)))
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
    let input =
        NewApiKeyInput { name: body.name, workspace: body.workspace, role: body.role, expires_at: body.expires_at };
    let created = uc::create(&app.store, &caller, app.clock.now(), input).await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: to_key(created.key), secret: created.secret })))
}

/// Delete an API key (its creator, or admins). It stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
