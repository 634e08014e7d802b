//! What a page does with a use case's refusal: a form shown again with each
//! message next to its field and what was typed kept ([`Problems`]), or an
//! error page ([`UiError`]) with the same words the API would answer.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::ApiError;

/// A page of a list: where the next starts.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in (or the session ended): to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// A form that did not come from a page of this session (CSRF).
    Forged,
    /// What the use case answered.
    App(canopy_app::Error),
}

impl From<canopy_app::Error> for UiError {
    fn from(e: canopy_app::Error) -> Self {
        Self::App(e)
    }
}

impl From<canopy_store::StoreError> for UiError {
    fn from(e: canopy_store::StoreError) -> Self {
        Self::App(e.into())
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
    status: u16,
    css: &'static str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            UiError::SignIn { next } => {
                let to =
                    format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
                return Redirect::to(&to).into_response();
            }
            UiError::Forged => (
                StatusCode::FORBIDDEN,
                "This form was not accepted",
                "It did not come from a page of your current sign-in (it may have expired). Go back, reload \
                 the page and try again."
                    .to_owned(),
            ),
            UiError::App(e) => {
                // the same status and words as the API's answer
                let api = ApiError::from(e);
                if let ApiError::Internal(cause) = &api {
                    tracing::error!(%cause, "page failed");
                }
                let problem = api.to_problem();
                let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let detail = if problem.errors.is_empty() {
                    problem.detail
                } else {
                    problem.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
                };
                let title = match status.as_u16() {
                    403 => "Not allowed",
                    404 => "Not found",
                    409 => "Conflict",
                    429 | 503 => "Please try again shortly",
                    s if s >= 500 => "Something went wrong on Canopy's side",
                    _ => "This could not be done",
                };
                (status, title, detail)
            }
        };
        let page = ErrorPage { title, detail: &detail, status: status.as_u16(), css: super::assets::CSS };
        let mut res = super::render(&page);
        *res.status_mut() = status;
        res
    }
}

/// The messages of a form shown again, by field, and one for the whole form.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    fields: BTreeMap<String, String>,
    pub general: Option<String>,
}

impl Problems {
    /// What a use case's error says about a form whose fields are `known`
    /// (messages for other fields go to the whole form, with the field's
    /// name); `None` when the error is not about the input, so that it is
    /// shown as an error page instead.
    pub fn of(e: &canopy_app::Error, known: &[&str]) -> Option<Self> {
        use canopy_app::Error as E;
        let mut p = Problems::default();
        match e {
            E::Invalid(errors) => {
                for fe in errors {
                    p.add(&fe.field, &fe.message, known);
                }
            }
            E::Conflict { detail, field: Some(field) } => p.add(field, detail, known),
            E::Conflict { detail, field: None }
            | E::Unreadable(detail)
            | E::Upstream(detail)
            | E::PreconditionFailed(detail) => p.general = Some(detail.clone()),
            E::Scim(e) => p.general = Some(e.detail.clone()),
            E::TooManyRequests { detail, .. } | E::Unavailable { detail, .. } => p.general = Some(detail.clone()),
            E::Forbidden(_) | E::NotFound(_) | E::Unauthenticated(_) | E::Internal(_) => return None,
        }
        Some(p)
    }

    /// The messages of the use case's fields `from` shown at the form's field `to`.
    pub fn moved(mut self, from: &[&str], to: &str) -> Self {
        for f in from {
            if let Some(m) = self.fields.remove(*f) {
                self.fields.entry(to.to_owned()).or_insert(m);
            }
        }
        self
    }

    /// Every message as one for the whole form, each prefixed by `what`
    /// (a row of a table, whose fields have no place of their own).
    pub fn flattened(self, what: &str) -> Self {
        let mut parts: Vec<String> = self.fields.into_iter().map(|(f, m)| format!("{f}: {m}")).collect();
        parts.extend(self.general);
        Problems::general(format!("{what}: {}", parts.join("; ")))
    }

    /// One message for the whole form.
    pub fn general(message: impl Into<String>) -> Self {
        Problems { fields: BTreeMap::new(), general: Some(message.into()) }
    }

    fn add(&mut self, field: &str, message: &str, known: &[&str]) {
        // `tags.cost-centre` belongs to the field `tags.cost-centre` where the
        // form has one; another nested field to its parent; the rest to the form
        if known.contains(&field) {
            self.fields.entry(field.to_owned()).or_insert_with(|| message.to_owned());
        } else if let Some((parent, key)) = field.split_once('.').filter(|(parent, _)| known.contains(parent)) {
            // a nested field (`settings.auth_url`) is shown at its parent, named
            let entry = self.fields.entry(parent.to_owned()).or_default();
            if !entry.is_empty() {
                entry.push_str("; ");
            }
            entry.push_str(&format!("{key}: {message}"));
        } else {
            let line = format!("{field}: {message}");
            self.general = Some(match self.general.take() {
                Some(g) => format!("{g} {line}"),
                None => line,
            });
        }
    }

    /// The message for `field`, if any (templates: `{% if let Some(m) = problems.get("x") %}`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }
}

/// A page answered with 422 (a form shown again with its problems).
pub fn unprocessable(mut res: Response) -> Response {
    *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    res
}

/// After a change: to `to` (Post/Redirect/Get), with a message for the next page.
pub fn done(to: &str, message: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(&super::session::flash_cookie(message)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
