//! One module per REST resource, one function per operation.
//!
//! Handlers are thin: parse and validate the request, authorise through
//! [`crate::auth::Caller`], load and change state through one store
//! transaction that also appends the history event, answer.

use base64::Engine;
use canopy_api_types::Page;
use canopy_store::{ProjectRecord, Tx, UserRecord, WorkspaceRecord};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

pub mod admin;
pub mod api_keys;
pub mod bindings;
pub mod deletion;
pub mod emergency;
pub mod expired_access;
pub mod groups;
pub mod health;
pub mod history;
pub mod members;
pub mod payment_methods;
pub mod platforms;
pub mod project_roles;
pub mod projects;
pub mod requests;
pub mod session;
pub mod settings;
pub mod tag_definitions;
pub mod tenants;
pub mod users;
pub mod workspaces;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

impl ListQuery {
    pub fn limit(&self) -> ApiResult<u32> {
        check_limit(self.limit)
    }

    /// The decoded cursor (the sort key of the last item of the previous page).
    pub fn cursor(&self) -> ApiResult<Option<String>> {
        decode_cursor(self.cursor.as_deref())
    }
}

pub fn check_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}"))),
    }
}

pub fn decode_cursor(cursor: Option<&str>) -> ApiResult<Option<String>> {
    let Some(c) = cursor else { return Ok(None) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|c| !c.contains('\0'))
        .map(Some)
        .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API returned"))
}

pub fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Cut the extra row the store fetched and turn the rest into a page.
pub fn page<R, T>(mut rows: Vec<R>, limit: u32, key: impl Fn(&R) -> String, map: impl FnMut(R) -> T) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
    Page { items: rows.into_iter().map(map).collect(), next_cursor }
}

pub async fn load_workspace(tx: &mut Tx, identifier: &str) -> ApiResult<WorkspaceRecord> {
    Ok(canopy_app::load::workspace(tx, identifier).await?)
}

pub async fn load_project(tx: &mut Tx, ws: &WorkspaceRecord, identifier: &str) -> ApiResult<ProjectRecord> {
    Ok(canopy_app::load::project(tx, ws, identifier).await?)
}

pub async fn load_user(tx: &mut Tx, username: &str) -> ApiResult<UserRecord> {
    Ok(canopy_app::load::user(tx, username).await?)
}

pub fn to_user(u: UserRecord) -> canopy_api_types::User {
    canopy_api_types::User {
        username: u.username,
        email: u.email,
        first_name: u.first_name,
        last_name: u.last_name,
        active: u.active,
        installation_roles: u.installation_roles.iter().map(|r| r.as_str().to_owned()).collect(),
        created_at: u.created_at,
    }
}

pub use canopy_app::load::{rfc3339, subject_string};

/// A free-text note (a justification, a reason) as given: trimmed, at most
/// 1000 characters, `None` when blank.
pub fn note_text<'a>(field: &str, raw: Option<&'a str>) -> Result<Option<&'a str>, canopy_api_types::FieldError> {
    canopy_app::load::note_text(field, raw)
        .map_err(|e| canopy_api_types::FieldError { field: e.field, message: e.message })
}
