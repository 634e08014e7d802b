//! RFC 9457 problem details, the body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error. `errors` names each invalid field of the request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:canopy:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable, snake_case error code scripts can match on.
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request, e.g. `identifier` or `query.limit`.
    pub field: String,
    pub message: String,
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
