//! Tag definitions (PR3): admins define the tags projects carry; everyone
//! signed in reads them. Projects' tags are checked against them by
//! `canopy_domain::tags::apply_tags` on create and update.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{Page, Problem, TagDefinition, UpdateTagDefinition};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::tags::{self, TagKind};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, page};

fn to_api(d: tags::TagDefinition) -> TagDefinition {
    TagDefinition {
        key: d.key,
        display_name: d.display_name,
        kind: d.kind.as_str().into(),
        options: d.options,
        required: d.required,
        default: d.default,
        admin_only: d.admin_only,
        pattern: d.pattern,
    }
}

fn problems(list: Vec<(String, String)>) -> ApiError {
    ApiError::Invalid(
        list.into_iter().map(|(field, message)| canopy_api_types::FieldError { field, message }).collect(),
    )
}

fn details(d: &tags::TagDefinition) -> serde_json::Value {
    serde_json::to_value(to_api(d.clone())).unwrap_or_default()
}

/// Every tag definition, by key.
#[utoipa::path(get, path = "/api/v1/tag-definitions", tag = "projects", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<TagDefinition>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<TagDefinition>>> {
    let limit = q.limit()?;
    let after = q.cursor()?;
    let mut tx = app.store.read().await?;
    let rows: Vec<_> = tx
        .tag_definitions()
        .await?
        .into_iter()
        .filter(|d| after.as_ref().is_none_or(|a| &d.key > a))
        .take(limit as usize + 1)
        .collect();
    Ok(Json(page(rows, limit, |d| d.key.clone(), to_api)))
}

/// Define a tag (admins).
#[utoipa::path(post, path = "/api/v1/tag-definitions", tag = "projects", request_body = TagDefinition,
    security(("bearer" = [])),
    responses((status = 201, body = TagDefinition), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TagDefinition>,
) -> ApiResult<(StatusCode, Json<TagDefinition>)> {
    caller.require(Action::AdministerInstallation)?;
    let kind: TagKind =
        body.kind.parse().map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("type", e.to_string()))?;
    let d = tags::TagDefinition {
        key: body.key,
        display_name: body.display_name.trim().to_owned(),
        kind,
        options: body.options,
        required: body.required,
        default: body.default.filter(|v| !v.is_null()),
        admin_only: body.admin_only,
        pattern: body.pattern.filter(|p| !p.is_empty()),
    };
    let found = tags::check_definition(&d);
    if !found.is_empty() {
        return Err(problems(found));
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    if tx.tag_definition(&d.key).await?.is_some() {
        return Err(ApiError::conflict_on("key", format!("tag {} is defined already", d.key)));
    }
    tx.put_tag_definition(&d, now).await?;
    tx.append_event(None, EventKind::TagDefinitionCreated, now, &caller.initiator(), details(&d)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_api(d))))
}

/// Change a tag definition (admins). Projects keep their tags; the new rules
/// apply to their next change.
#[utoipa::path(patch, path = "/api/v1/tag-definitions/{tag}", tag = "projects", params(("tag" = String, Path)),
    request_body = UpdateTagDefinition, security(("bearer" = [])),
    responses((status = 200, body = TagDefinition), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(tag): Path<String>,
    ApiJson(body): ApiJson<UpdateTagDefinition>,
) -> ApiResult<Json<TagDefinition>> {
    caller.require(Action::AdministerInstallation)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let before = tx.tag_definition(&tag).await?.ok_or_else(|| ApiError::not_found(format!("no tag {tag:?}")))?;
    let mut d = before.clone();
    if let Some(n) = body.display_name {
        d.display_name = n.trim().to_owned();
    }
    if let Some(o) = body.options {
        d.options = o;
    }
    if let Some(r) = body.required {
        d.required = r;
    }
    if let Some(v) = body.default {
        d.default = v.filter(|v| !v.is_null());
    }
    if let Some(a) = body.admin_only {
        d.admin_only = a;
    }
    if let Some(p) = body.pattern {
        d.pattern = p.filter(|p| !p.is_empty());
    }
    let found = tags::check_definition(&d);
    if !found.is_empty() {
        return Err(problems(found));
    }
    tx.put_tag_definition(&d, now).await?;
    let change = serde_json::json!({"tag": d.key, "old": details(&before), "new": details(&d)});
    tx.append_event(None, EventKind::TagDefinitionUpdated, now, &caller.initiator(), change).await?;
    tx.commit().await?;
    Ok(Json(to_api(d)))
}

/// Remove a tag definition (admins). Projects keep the values they carry.
#[utoipa::path(delete, path = "/api/v1/tag-definitions/{tag}", tag = "projects", params(("tag" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(tag): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerInstallation)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let d = tx.tag_definition(&tag).await?.ok_or_else(|| ApiError::not_found(format!("no tag {tag:?}")))?;
    tx.delete_tag_definition(&tag).await?;
    tx.append_event(None, EventKind::TagDefinitionDeleted, now, &caller.initiator(), details(&d)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
