//! One module per REST resource, one function per operation.
//!
//! Handlers are thin: parse the request, call one use case of
//! `canopy_app` with the [`crate::auth::Caller`] and the instant, and map its
//! result (a record, a page, an outcome, or an error) to the response. No
//! handler reads or writes the store itself.

use canopy_api_types::Page;
use canopy_app::paging::Paging;
use canopy_store::UserRecord;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiResult;

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

impl ListQuery {
    /// The page asked for, or the field that is wrong.
    pub fn paging(&self) -> ApiResult<Paging> {
        Ok(Paging::parse(self.limit, self.cursor.as_deref())?)
    }
}

/// A page of the application layer as the API's list body.
pub fn to_page<T, U>(p: canopy_app::paging::Page<T>, map: impl FnMut(T) -> U) -> Page<U> {
    Page { items: p.items.into_iter().map(map).collect(), next_cursor: p.next_cursor }
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

pub use canopy_app::load::subject_string;
