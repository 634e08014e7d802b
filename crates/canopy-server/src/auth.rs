//! Authentication at the HTTP edge: the bearer token of a request resolved
//! into the acting [`Caller`] by the application layer
//! ([`canopy_app::principal::authenticate`]). Credentials themselves (password
//! hashing within bounds, token secrets) live in [`canopy_app::credentials`].

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;

pub use canopy_app::credentials::{
    API_KEY_PREFIX, Admission, PasswordHashing, SESSION_PREFIX, hash_password, hash_password_admitted, hash_secret,
    new_secret, verify_password,
};
pub use canopy_app::principal::{KeyActor, key_actor, user_actor};

/// The authenticated caller of a request: the application layer's principal.
pub type Caller = canopy_app::Principal;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthenticated("send Authorization: Bearer <token or API key>".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthenticated("the Authorization header must be Bearer <token>".into()))?;
        let principal = canopy_app::principal::authenticate(&app.store, token, app.clock.now()).await?;
        // a SCIM key speaks SCIM (`/scim/v2`) and nothing of this API
        if principal.actor.scim_only() {
            return Err(ApiError::Forbidden(canopy_domain::Denied::ScimOnly.to_string()));
        }
        Ok(principal)
    }
}
