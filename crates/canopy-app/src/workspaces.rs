//! Workspaces (WS1, WS2, FE1): created by a person who becomes their owner,
//! renamed by managers, given their own four-eye setting by admins, deleted
//! by owners once they hold no projects.

use canopy_domain::authz::Action;
use canopy_domain::events::{
    FourEyeChanged, HistoryChainCreated, MemberAdded, Named, WorkspaceCreated, WorkspaceDeleted, WorkspaceRenamed,
};
use canopy_domain::four_eye::FourEye;
use canopy_domain::{DisplayName, Identifier, SubjectKind, WorkspaceRole};
use canopy_store::{Store, Tx, WorkspaceRecord};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;
use crate::settings::{FourEyeChange, change_four_eye};

/// Where a workspace's four-eye setting comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FourEyeSource {
    /// Its own, set by an admin.
    Workspace,
    /// The installation's, which it follows.
    Installation,
}

impl FourEyeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Installation => "installation",
        }
    }
}

/// A workspace as a principal sees it: their role there and the four-eye
/// setting it follows.
#[derive(Debug, Clone)]
pub struct WorkspaceView {
    pub workspace: WorkspaceRecord,
    pub my_role: Option<WorkspaceRole>,
    pub four_eye: FourEye,
    pub four_eye_source: FourEyeSource,
}

/// The four-eye setting a workspace follows, and whether it is its own (FE1).
pub async fn four_eye_of(tx: &mut Tx, workspace_id: Uuid) -> Result<(FourEye, FourEyeSource)> {
    Ok(match tx.workspace_four_eye(workspace_id).await? {
        Some(own) => (own, FourEyeSource::Workspace),
        None => (tx.settings().await?.four_eye, FourEyeSource::Installation),
    })
}

/// A workspace with the principal's role and its four-eye setting.
pub async fn view(tx: &mut Tx, workspace: WorkspaceRecord, my_role: Option<WorkspaceRole>) -> Result<WorkspaceView> {
    let (four_eye, four_eye_source) = four_eye_of(tx, workspace.id).await?;
    Ok(WorkspaceView { workspace, my_role, four_eye, four_eye_source })
}

/// The workspaces the principal sees, by identifier: a person's are those
/// they are a member of (directly or through a group); an installation key
/// sees every workspace, a workspace key its own.
pub async fn list(store: &Store, by: &Principal, paging: &Paging) -> Result<Page<WorkspaceView>> {
    use canopy_domain::authz::ActorKind;
    let mut tx = store.read().await?;
    let after = paging.after.as_deref();
    let rows = match by.actor.kind {
        ActorKind::User => tx.list_workspaces(Some(by.actor.id), after, paging.limit).await?,
        ActorKind::InstallationKey => tx.list_workspaces(None, after, paging.limit).await?,
        ActorKind::WorkspaceKey { workspace_id, .. } => tx
            .workspace_by_id(workspace_id)
            .await?
            .into_iter()
            .filter(|w| after.is_none_or(|a| w.identifier.as_str() > a))
            .collect(),
    };
    let mut views = Vec::with_capacity(rows.len());
    for w in rows {
        let role = by.workspace_role(&mut tx, &w).await?;
        views.push(view(&mut tx, w, role).await?);
    }
    Ok(page(views, paging.limit, |v| v.workspace.identifier.clone()))
}

/// Every workspace of the installation, by identifier (the admin area, AD2).
pub async fn list_all(store: &Store, by: &Principal, paging: &Paging) -> Result<Page<WorkspaceView>> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.read().await?;
    let rows = tx.list_workspaces(None, paging.after.as_deref(), paging.limit).await?;
    let mut views = Vec::with_capacity(rows.len());
    for w in rows {
        views.push(view(&mut tx, w, None).await?);
    }
    Ok(page(views, paging.limit, |v| v.workspace.identifier.clone()))
}

/// The workspaces a principal can switch to in the web UI, by identifier,
/// at most `limit`: a person's own, and for admins every workspace (AD1).
/// Plain records, without the four-eye setting [`list`] reads per workspace.
pub async fn switchable(store: &Store, by: &Principal, limit: u32) -> Result<Vec<WorkspaceRecord>> {
    use canopy_domain::authz::ActorKind;
    let mut tx = store.read().await?;
    let every = by.require(Action::AdministerInstallation).is_ok();
    let mut rows = match by.actor.kind {
        _ if every => tx.list_workspaces(None, None, limit).await?,
        ActorKind::User => tx.list_workspaces(Some(by.actor.id), None, limit).await?,
        ActorKind::InstallationKey => tx.list_workspaces(None, None, limit).await?,
        ActorKind::WorkspaceKey { workspace_id, .. } => tx.workspace_by_id(workspace_id).await?.into_iter().collect(),
    };
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

/// What a principal may do in a workspace, so that an interface shows only
/// the controls they can use (the use cases still decide each action).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abilities {
    pub role: Option<WorkspaceRole>,
    /// Manage projects, members and bindings (WS7).
    pub manage: bool,
    /// Grant or take away the owner role.
    pub own: bool,
    /// Page through the history (HI2).
    pub history: bool,
}

/// The workspace `identifier` names (which the principal must see) and what
/// the principal may do in it.
pub async fn abilities(store: &Store, by: &Principal, identifier: &str) -> Result<(WorkspaceRecord, Abilities)> {
    use canopy_domain::authz::{authorize, effective_workspace_role};
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, identifier, Action::ViewWorkspace).await?;
    let direct = match by.actor.kind {
        canopy_domain::authz::ActorKind::User => tx.membership_roles_of_user(ws.id, by.actor.id).await?,
        _ => Vec::new(),
    };
    let role = effective_workspace_role(&by.actor, ws.id, direct);
    let may = |action| authorize(&by.actor, action, Some((ws.id, role))).is_ok();
    let abilities = Abilities {
        role,
        manage: may(Action::ManageWorkspace),
        own: may(Action::OwnWorkspace),
        history: may(Action::ViewHistory),
    };
    Ok((ws, abilities))
}

/// Create a workspace (WS1); the creating person becomes its owner.
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (identifier, display_name): (&str, &str),
) -> Result<WorkspaceView> {
    by.require(Action::CreateWorkspace)?;
    crate::validate! {
        identifier: "identifier" => Identifier::parse(identifier),
        display_name: "display_name" => DisplayName::parse(display_name),
    }
    let mut tx = store.write().await?;
    if tx.workspace_by_identifier(identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on("identifier", format!("workspace {identifier} already exists")));
    }
    let ws = tx.insert_workspace(identifier.as_str(), display_name.as_str(), now).await?;
    let initiator = by.initiator();
    let created = WorkspaceCreated { workspace: ws.identifier.clone(), display_name: ws.display_name.clone() };
    tx.record(Some(ws.id), now, &initiator, created.into())?;
    let mut my_role = None;
    if by.actor.is_user() {
        let role = WorkspaceRole::Owner;
        tx.upsert_member(ws.id, SubjectKind::User, by.actor.id, role, &by.actor.name, now).await?;
        let added = MemberAdded {
            subject: format!("user:{}", by.actor.name),
            role: role.as_str().to_owned(),
            emergency: false,
        };
        tx.record(Some(ws.id), now, &initiator, added.into())?;
        my_role = Some(role);
    }
    // the installation chain records the new chain, so that its deletion is
    // detected even with the workspace (SE7)
    let chain =
        HistoryChainCreated { workspace: ws.identifier.clone(), chain: ws.id.to_string(), recorded_later: false };
    tx.record(None, now, &initiator, chain.into())?;
    let view = view(&mut tx, ws, my_role).await?;
    tx.commit().await?;
    Ok(view)
}

/// Show a workspace to those who may see it.
pub async fn show(store: &Store, by: &Principal, ws: &str) -> Result<WorkspaceView> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewWorkspace).await?;
    let role = by.workspace_role(&mut tx, &ws).await?;
    view(&mut tx, ws, role).await
}

/// A change of a workspace: `None` keeps what it has; `four_eye:
/// Some(None)` makes it follow the installation's setting again.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceChange {
    /// A new display name as given (checked after authorisation).
    pub display_name: Option<String>,
    pub four_eye: Option<Option<FourEyeChange>>,
}

/// Whether a change gives the workspace a four-eye setting of its own,
/// which only admins may (managers must not switch off the control that
/// checks them).
pub fn needs_admin(change: &WorkspaceChange) -> bool {
    change.four_eye.is_some()
}

/// Rename a workspace (managers), or give it its own four-eye setting
/// (admins; FE1).
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    ws: &str,
    change: WorkspaceChange,
) -> Result<WorkspaceView> {
    let mut tx = store.write().await?;
    let mut ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    if needs_admin(&change) {
        by.require(Action::AdministerInstallation)?;
    }
    let display_name = change
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| Error::invalid("display_name", e.to_string()))?;
    if change.four_eye.is_some() {
        // read the setting under the lock, so that two changes do not both
        // start from the same old value
        tx.lock_workspace(ws.id).await?;
    }
    let four_eye = match change.four_eye {
        Some(Some(c)) => {
            let current = tx.effective_four_eye(ws.id).await?;
            Some(Some(change_four_eye("four_eye", current, c)?))
        }
        Some(None) => Some(None),
        None => None,
    };
    if let Some(name) = display_name {
        tx.rename_workspace(ws.id, name.as_str()).await?;
        let name = name.into_string();
        let renamed = WorkspaceRenamed {
            old: Named { display_name: std::mem::replace(&mut ws.display_name, name.clone()) },
            new: Named { display_name: name },
        };
        tx.record(Some(ws.id), now, &by.initiator(), renamed.into())?;
    }
    if let Some(setting) = four_eye {
        let old = tx.workspace_four_eye(ws.id).await?;
        if old != setting {
            tx.set_workspace_four_eye(ws.id, setting).await?;
            let changed = FourEyeChanged { old: old.map(Into::into), new: setting.map(Into::into) };
            tx.record(Some(ws.id), now, &by.initiator(), changed.into())?;
        }
    }
    let role = by.workspace_role(&mut tx, &ws).await?;
    let view = view(&mut tx, ws, role).await?;
    tx.commit().await?;
    Ok(view)
}

/// Delete a workspace (owners). Refused while it has projects; its history is kept.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, ws: &str) -> Result<()> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::OwnWorkspace).await?;
    tx.lock_workspace(ws.id).await?;
    let projects = tx.count_projects(ws.id).await?;
    if projects > 0 {
        return Err(Error::conflict(format!(
            "workspace {} still has {projects} project(s); delete them first",
            ws.identifier
        )));
    }
    tx.record(Some(ws.id), now, &by.initiator(), WorkspaceDeleted { workspace: ws.identifier.clone() }.into())?;
    tx.delete_workspace(ws.id).await?;
    tx.commit().await?;
    Ok(())
}
