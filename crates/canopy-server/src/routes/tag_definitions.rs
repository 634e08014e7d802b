//! Tag definitions (PR3): admins define the tags projects carry; everyone
//! signed in reads them. Changes are use cases of
//! [`canopy_app::tag_definitions`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{Page, Problem, TagDefinition, UpdateTagDefinition};
use canopy_app::tag_definitions::{self as uc, NewTagDefinition, TagDefinitionChange};
use canopy_domain::tags;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, to_page};

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

/// Every tag definition, by key.
#[utoipa::path(get, path = "/api/v1/tag-definitions", tag = "projects", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<TagDefinition>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<TagDefinition>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(uc::list(&app.store, &paging).await?, to_api)))
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
    let d = NewTagDefinition {
        key: body.key,
        display_name: body.display_name,
        kind: body.kind,
        options: body.options,
        required: body.required,
        default: body.default,
        admin_only: body.admin_only,
        pattern: body.pattern,
    };
    let d = uc::create(&app.store, &caller, app.clock.now(), d).await?;
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
    let change = TagDefinitionChange {
        display_name: body.display_name,
        options: body.options,
        required: body.required,
        default: body.default,
        admin_only: body.admin_only,
        pattern: body.pattern,
    };
    Ok(Json(to_api(uc::update(&app.store, &caller, app.clock.now(), &tag, change).await?)))
}

/// Remove a tag definition (admins). Projects keep the values they carry.
#[utoipa::path(delete, path = "/api/v1/tag-definitions/{tag}", tag = "projects", params(("tag" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(tag): Path<String>) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}
