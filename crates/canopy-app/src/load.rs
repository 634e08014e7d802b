//! Loading what a use case names by its user-facing identifier, with the
//! "does not exist" answer every interface gives alike.

use canopy_store::{BindingRecord, ProjectRecord, Tx, UserRecord, WorkspaceRecord};
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::principal::Principal;

pub async fn workspace(tx: &mut Tx, identifier: &str) -> Result<WorkspaceRecord> {
    tx.workspace_by_identifier(identifier)
        .await?
        .ok_or_else(|| Error::not_found(format!("workspace {identifier:?} does not exist")))
}

pub async fn project(tx: &mut Tx, ws: &WorkspaceRecord, identifier: &str) -> Result<ProjectRecord> {
    tx.project(ws.id, identifier).await?.ok_or_else(|| no_project(ws, identifier))
}

/// The answer when `ws` has no project `identifier`.
pub(crate) fn no_project(ws: &WorkspaceRecord, identifier: &str) -> Error {
    Error::not_found(format!("project {identifier:?} does not exist in workspace {:?}", ws.identifier))
}

/// The workspace and project a path names, refusing a principal who may
/// not perform `action` in the workspace (one statement reads both; the
/// project is answered only to a principal let in, so outsiders learn
/// nothing of its projects).
pub async fn project_in(
    tx: &mut Tx,
    by: &Principal,
    (ws, project): (&str, &str),
    action: canopy_domain::authz::Action,
) -> Result<(WorkspaceRecord, ProjectRecord)> {
    by.project_in(tx, (ws, project), action).await
}

pub async fn user(tx: &mut Tx, username: &str) -> Result<UserRecord> {
    tx.user_by_username(username).await?.ok_or_else(|| Error::not_found(format!("user {username:?} does not exist")))
}

/// A binding of `project` by its id.
pub async fn binding(tx: &mut Tx, project: &ProjectRecord, id: &str) -> Result<BindingRecord> {
    let not_found = || Error::not_found(format!("binding {id:?} does not exist on project {}", project.identifier));
    Uuid::parse_str(id).map_err(|_| not_found())?;
    let b = tx.binding(id).await?.ok_or_else(not_found)?;
    if b.binding.project_id != project.id {
        return Err(not_found());
    }
    Ok(b)
}

/// `user:NAME` / `group:IDENTIFIER`: how a subject is named in paths, lists and the history.
pub fn subject_string(kind: canopy_domain::SubjectKind, name: &str) -> String {
    // one allocation of the exact size: this runs for every row of a bindings page
    [kind.as_str(), ":", name].concat()
}

/// An instant as history details record it: RFC 3339 in UTC, or null.
pub fn rfc3339(t: Option<time::OffsetDateTime>) -> serde_json::Value {
    use time::format_description::well_known::Rfc3339;
    t.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok())
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// A free-text note (a justification, a reason) as given: trimmed, at most
/// 1000 characters, `None` when blank.
pub fn note_text<'a>(field: &str, raw: Option<&'a str>) -> Result<Option<&'a str>, FieldError> {
    let t = raw.map(str::trim).filter(|t| !t.is_empty());
    if t.is_some_and(|t| t.chars().count() > 1000) {
        return Err(FieldError::new(field, "must be at most 1000 characters"));
    }
    Ok(t)
}
