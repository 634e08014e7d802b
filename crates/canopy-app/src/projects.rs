//! Projects of a workspace (PR1, PR3, PM2): created and changed by its
//! managers, with their tags and payment methods.

use canopy_domain::authz::Action;
use canopy_domain::events::{ProjectAspect, ProjectCreated, ProjectPayment, ProjectUpdated};
use canopy_domain::tags::apply_tags;
use canopy_domain::{DisplayName, Identifier};
use canopy_store::{BindingRecord, ProjectRecord, Store, TenantRecord, Tx, WorkspaceRecord};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::load;
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;

/// A project to create, as given (checked after authorisation).
#[derive(Debug, Clone, Default)]
pub struct NewProjectInput {
    pub identifier: String,
    pub display_name: String,
    pub tags: Map<String, Value>,
    pub payment_method: Option<Uuid>,
    pub substitute_payment_method: Option<Uuid>,
}

/// A change of a project; `None` keeps what it has, `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct ProjectChange {
    pub display_name: Option<String>,
    pub tags: Option<Map<String, Value>>,
    pub payment_method: Option<Option<Uuid>>,
    pub substitute_payment_method: Option<Option<Uuid>>,
}

/// One page of a workspace's projects by identifier (members of the workspace).
pub async fn list(
    store: &Store,
    by: &Principal,
    ws: &str,
    paging: &Paging,
) -> Result<(WorkspaceRecord, Page<ProjectRecord>)> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewWorkspace).await?;
    let rows = tx.list_projects(ws.id, paging.after.as_deref(), paging.limit).await?;
    Ok((ws, page(rows, paging.limit, |p| p.identifier.clone())))
}

/// A project's page (PR2): the project, its bindings, who effectively has
/// access now, and its tenants.
#[derive(Debug, Clone)]
pub struct ProjectDetails {
    pub workspace: WorkspaceRecord,
    pub project: ProjectRecord,
    pub bindings: Vec<BindingRecord>,
    /// Username and the role identifiers they hold now, by username.
    pub effective_access: Vec<(String, Vec<String>)>,
    pub tenants: Vec<TenantRecord>,
}

/// A project's page (members of the workspace).
pub async fn show(store: &Store, by: &Principal, now: OffsetDateTime, path: (&str, &str)) -> Result<ProjectDetails> {
    let mut tx = store.read().await?;
    let (workspace, project) = load::project_in(&mut tx, by, path, Action::ViewWorkspace).await?;
    let bindings = tx.project_bindings(project.id).await?;
    let effective_access = effective_access(&mut tx, &bindings, now).await?;
    let tenants = tx.project_tenants(project.id).await?;
    Ok(ProjectDetails { workspace, project, bindings, effective_access, tenants })
}

/// Who effectively holds which roles on a project at `now`: bound users and
/// the current members of bound groups, active accounts only (AC3, AC10).
async fn effective_access(
    tx: &mut Tx,
    bindings: &[BindingRecord],
    now: OffsetDateTime,
) -> Result<Vec<(String, Vec<String>)>> {
    use std::collections::{BTreeMap, BTreeSet};

    use canopy_domain::SubjectKind;
    use canopy_domain::access::{UserStatus, effective_project_roles};

    let groups: BTreeSet<_> = bindings
        .iter()
        .filter(|b| b.binding.subject.kind == SubjectKind::Group)
        .map(|b| b.binding.subject.id)
        .collect();
    let memberships = tx.group_memberships(&groups).await?;
    let mut user_ids: BTreeSet<_> = memberships.values().flatten().copied().collect();
    user_ids
        .extend(bindings.iter().filter(|b| b.binding.subject.kind == SubjectKind::User).map(|b| b.binding.subject.id));
    let mut users = Vec::new();
    let mut names = BTreeMap::new();
    for id in user_ids {
        if let Some(u) = tx.user_by_id(id).await? {
            users.push(UserStatus { id, active: u.active });
            names.insert(id, u.username);
        }
    }
    let role_names: BTreeMap<_, _> = bindings.iter().map(|b| (b.binding.role_id, b.role_identifier.clone())).collect();
    let plain: Vec<_> = bindings.iter().map(|b| b.binding.clone()).collect();
    let mut out: Vec<(String, Vec<String>)> = effective_project_roles(&plain, &memberships, &users, now)
        .into_iter()
        .filter_map(|(user, roles)| {
            Some((names.get(&user)?.clone(), roles.iter().filter_map(|r| role_names.get(r).cloned()).collect()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A project's payment method and substitute (PM2): both the workspace's,
/// a substitute only with a method, and not the method itself.
async fn payment(
    tx: &mut Tx,
    ws: &canopy_store::WorkspaceRecord,
    method: Option<Uuid>,
    substitute: Option<Uuid>,
) -> Result<(Option<Uuid>, Option<Uuid>)> {
    for (field, id) in [("payment_method", method), ("substitute_payment_method", substitute)] {
        if let Some(id) = id
            && tx.payment_method(id).await?.is_none_or(|m| m.workspace_id != ws.id)
        {
            return Err(Error::invalid(field, format!("is not a payment method of workspace {}", ws.identifier)));
        }
    }
    match (method, substitute) {
        (None, Some(_)) => Err(Error::invalid("substitute_payment_method", "needs a payment_method to replace")),
        (Some(m), Some(s)) if m == s => {
            Err(Error::invalid("substitute_payment_method", "must differ from the payment method"))
        }
        pair => Ok(pair),
    }
}

/// Refuse to set a substitute where the installation switched them off (PM2).
async fn substitutes_allowed(tx: &mut Tx, setting_one: bool) -> Result<()> {
    if setting_one && !tx.settings().await?.payment_substitutes {
        return Err(Error::invalid(
            "substitute_payment_method",
            "this installation does not use substitute payment methods (an admin can enable them in the settings)",
        ));
    }
    Ok(())
}

/// Tag problems as a 422 naming each `tags.KEY`.
fn tag_problems(list: Vec<(String, String)>) -> Error {
    Error::Invalid(list.into_iter().map(|(field, message)| FieldError { field, message }).collect())
}

/// Create a project (managers).
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    ws: &str,
    input: NewProjectInput,
) -> Result<(WorkspaceRecord, ProjectRecord)> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    // every invalid field at once: the names and the tags alike
    let defs = tx.tag_definitions().await?;
    let admin = by.require(Action::AdministerInstallation).is_ok();
    let identifier = Identifier::parse(&input.identifier);
    let display_name = DisplayName::parse(&input.display_name);
    let tags = apply_tags(&defs, &input.tags, &Default::default(), true, admin);
    let (Ok(identifier), Ok(display_name), Ok(tags)) = (&identifier, &display_name, &tags) else {
        let mut errors = Vec::new();
        if let Err(e) = &identifier {
            errors.push(FieldError::new("identifier", e.to_string()));
        }
        if let Err(e) = &display_name {
            errors.push(FieldError::new("display_name", e.to_string()));
        }
        if let Err(list) = tags {
            errors.extend(list.into_iter().map(|(field, message)| FieldError { field, message }));
        }
        return Err(Error::Invalid(errors));
    };
    let tags = tags.clone();
    if tx.project(ws.id, identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on(
            "identifier",
            format!("project {identifier} already exists in {}", ws.identifier),
        ));
    }
    substitutes_allowed(&mut tx, input.substitute_payment_method.is_some()).await?;
    let (method, substitute) = payment(&mut tx, &ws, input.payment_method, input.substitute_payment_method).await?;
    let mut p = tx.insert_project(ws.id, identifier.as_str(), display_name.as_str(), now).await?;
    tx.set_project_tags(p.id, &tags).await?;
    p.tags = tags;
    if method.is_some() {
        tx.set_project_payment(p.id, method, substitute).await?;
        (p.payment_method_id, p.substitute_payment_method_id) = (method, substitute);
    }
    let created =
        ProjectCreated { project: p.identifier.clone(), display_name: p.display_name.clone(), tags: p.tags.clone() };
    tx.record(Some(ws.id), now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok((ws, p))
}

/// Change a project's display name or tags (managers; admin-only tags: admins).
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project): (&str, &str),
    change: ProjectChange,
) -> Result<(WorkspaceRecord, ProjectRecord)> {
    let mut tx = store.write().await?;
    let (ws, mut p) = by.project_in(&mut tx, (ws, project), Action::ManageWorkspace).await?;
    crate::validate! { display_name: "display_name" => change.display_name.as_deref().map(DisplayName::parse).transpose() }
    if let Some(name) = display_name {
        tx.rename_project(p.id, name.as_str()).await?;
        let name = name.into_string();
        let updated = ProjectUpdated {
            project: p.identifier.clone(),
            old: ProjectAspect { display_name: Some(p.display_name.clone()), payment: None, tags: None },
            new: ProjectAspect { display_name: Some(name.clone()), payment: None, tags: None },
        };
        tx.record(Some(ws.id), now, &by.initiator(), updated.into())?;
        p.display_name = name;
    }
    if change.payment_method.is_some() || change.substitute_payment_method.is_some() {
        substitutes_allowed(&mut tx, matches!(change.substitute_payment_method, Some(Some(_)))).await?;
        let method = change.payment_method.unwrap_or(p.payment_method_id);
        // removing the method removes its substitute
        let substitute = match (method, change.substitute_payment_method) {
            (None, _) => None,
            (_, Some(s)) => s,
            (_, None) => p.substitute_payment_method_id,
        };
        let (method, substitute) = payment(&mut tx, &ws, method, substitute).await?;
        if (method, substitute) != (p.payment_method_id, p.substitute_payment_method_id) {
            tx.set_project_payment(p.id, method, substitute).await?;
            let payment = |payment_method, substitute_payment_method| ProjectAspect {
                display_name: None,
                payment: Some(ProjectPayment { payment_method, substitute_payment_method }),
                tags: None,
            };
            let updated = ProjectUpdated {
                project: p.identifier.clone(),
                old: payment(p.payment_method_id, p.substitute_payment_method_id),
                new: payment(method, substitute),
            };
            tx.record(Some(ws.id), now, &by.initiator(), updated.into())?;
            (p.payment_method_id, p.substitute_payment_method_id) = (method, substitute);
        }
    }
    if let Some(given) = &change.tags {
        // the tags as they are now, with the row locked until commit
        tx.lock_project(p.id).await?;
        p.tags = tx.project_by_id(p.id).await?.map(|q| q.tags).unwrap_or_default();
        let defs = tx.tag_definitions().await?;
        let admin = by.require(Action::AdministerInstallation).is_ok();
        let tags = apply_tags(&defs, given, &p.tags, false, admin).map_err(tag_problems)?;
        if tags != p.tags {
            tx.set_project_tags(p.id, &tags).await?;
            let updated = ProjectUpdated {
                project: p.identifier.clone(),
                old: ProjectAspect { display_name: None, payment: None, tags: Some(std::mem::take(&mut p.tags)) },
                new: ProjectAspect { display_name: None, payment: None, tags: Some(tags.clone()) },
            };
            tx.record(Some(ws.id), now, &by.initiator(), updated.into())?;
            p.tags = tags;
        }
    }
    tx.commit().await?;
    Ok((ws, p))
}
