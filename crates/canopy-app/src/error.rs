//! What a use case can answer instead of its outcome.
//!
//! The variants say what went wrong in the caller's terms (an invalid field,
//! not allowed, unknown, a conflict with the current state); each interface
//! maps them to its own form (problem details for REST, a message next to the
//! field for the web UI, a SCIM error). An internal cause is for the log only.

use canopy_domain::Denied;
use canopy_store::StoreError;

/// One invalid field of what the caller gave, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

/// Why a use case did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fields of the input are invalid (all of them at once where possible).
    #[error("invalid field(s)")]
    Invalid(Vec<FieldError>),
    /// The input holds what cannot be stored at all (NUL characters).
    #[error("{0}")]
    Unreadable(String),
    /// The principal may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The principal could not be authenticated (a token gone, a key disarmed).
    #[error("{0}")]
    Unauthenticated(String),
    /// The named thing does not exist (or the principal may not know of it).
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the current state: a duplicate, something in use,
    /// a request decided already; `field` names the input concerned.
    #[error("{detail}")]
    Conflict { detail: String, field: Option<String> },
    /// Too many attempts; retry after this many seconds.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: i64 },
    /// Shed to stay within bounds; retry after this many seconds.
    #[error("{detail}")]
    Unavailable { detail: String, retry_after: i64 },
    /// A cloud platform asked on the caller's behalf failed; its own message.
    #[error("{0}")]
    Upstream(String),
    /// A SCIM request Canopy cannot take, in SCIM's terms (`scimType`).
    #[error("{0}")]
    Scim(canopy_domain::scim::ScimError),
    /// The resource is not at the version the request names (`If-Match`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// A fault on Canopy's side; the cause is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict { detail: detail.into(), field: None }
    }

    pub fn conflict_on(field: &str, detail: impl Into<String>) -> Self {
        Self::Conflict { detail: detail.into(), field: Some(field.to_owned()) }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::conflict("this conflicts with a change made at the same time; retry"),
            StoreError::InvalidText => {
                Self::Unreadable("the request holds text that cannot be stored (NUL characters)".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<Denied> for Error {
    fn from(d: Denied) -> Self {
        Self::Forbidden(d.to_string())
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parse every field of an input at once and collect all errors, so that a
/// caller learns about each invalid field in one answer: binds each name to
/// its parsed value, or returns [`Error::Invalid`] listing every field that
/// failed.
///
/// ```text
/// validate! {
///     identifier: "identifier" => Identifier::parse(&input.identifier),
///     display_name: "display_name" => DisplayName::parse(&input.display_name),
/// }
/// ```
#[macro_export]
macro_rules! validate {
    ($($name:ident : $field:expr => $parse:expr),+ $(,)?) => {
        let mut __errors: Vec<$crate::error::FieldError> = Vec::new();
        $(
            let $name = match $parse {
                Ok(v) => Some(v),
                Err(e) => {
                    __errors.push($crate::error::FieldError::new($field, e.to_string()));
                    None
                }
            };
        )+
        let ($($name,)+) = match ($($name,)+) {
            ($(Some($name),)+) => ($($name,)+),
            _ => return Err($crate::error::Error::Invalid(__errors)),
        };
    };
}
