//! Who am I (`GET /api/v1/me`, the web UI's home): the principal's account,
//! workspaces and effective project access, and for the workspaces they
//! manage, the bindings that expire soon (AC12) and the four-eye requests
//! that wait for their decision (FE2).

use std::collections::{BTreeMap, BTreeSet};

use canopy_domain::access::{UserStatus, effective_project_roles};
use canopy_domain::authz::ActorKind;
use canopy_domain::{SubjectKind, WorkspaceRole};
use canopy_store::{Store, Tx, UserRecord, WorkspaceRecord};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::expired_access::{self, Expiring};
use crate::principal::Principal;

/// At most this many expiry notices.
pub const NOTICES: usize = 50;

/// A workspace of the principal, with their role there.
#[derive(Debug, Clone)]
pub struct MyWorkspace {
    pub workspace: WorkspaceRecord,
    pub role: WorkspaceRole,
    /// Pending requests waiting for this person's decision (managers).
    pub requests_to_decide: u64,
}

/// A project where the principal effectively holds roles now.
#[derive(Debug, Clone)]
pub struct MyProject {
    pub workspace: String,
    pub project: String,
    pub roles: Vec<String>,
}

/// What `me` answers.
#[derive(Debug, Clone)]
pub struct Me {
    /// The account, for a person.
    pub user: Option<UserRecord>,
    pub workspaces: Vec<MyWorkspace>,
    pub projects: Vec<MyProject>,
    /// Soonest first, at most [`NOTICES`].
    pub notices: Vec<Expiring>,
}

/// The principal's account, workspaces, effective access and notices.
pub async fn me(store: &Store, by: &Principal, now: OffsetDateTime) -> Result<Me> {
    let mut tx = store.read().await?;
    let mut me = Me { user: None, workspaces: vec![], projects: vec![], notices: vec![] };
    match by.actor.kind {
        ActorKind::User => {
            let user =
                tx.user_by_id(by.actor.id).await?.ok_or_else(|| Error::Unauthenticated("account is gone".into()))?;
            let workspaces = tx.list_workspaces(Some(user.id), None, u32::MAX - 1).await?;
            for ws in workspaces {
                let Some(role) = WorkspaceRole::strongest(tx.membership_roles_of_user(ws.id, user.id).await?) else {
                    continue;
                };
                let mut requests_to_decide = 0;
                // notices go to the workspace's managers, as the soon-expiring e-mails do
                if role >= WorkspaceRole::Manager {
                    me.notices.extend(expired_access::soon(&mut tx, ws.id, now, NOTICES as i64).await?);
                    requests_to_decide = tx.count_requests_to_decide(ws.id, user.id).await?;
                }
                me.workspaces.push(MyWorkspace { workspace: ws, role, requests_to_decide });
            }
            me.projects = projects_of(&mut tx, &user, now).await?;
            me.notices.sort_by_key(|n| n.expires_at);
            me.notices.truncate(NOTICES);
            me.user = Some(user);
        }
        ActorKind::WorkspaceKey { workspace_id, role } => {
            if let Some(ws) = tx.workspace_by_id(workspace_id).await? {
                me.workspaces.push(MyWorkspace { workspace: ws, role, requests_to_decide: 0 });
            }
        }
        ActorKind::InstallationKey => {}
    }
    Ok(me)
}

/// The projects where `user` effectively holds roles at `now` (AC2, AC3, AC10).
async fn projects_of(tx: &mut Tx, user: &UserRecord, now: OffsetDateTime) -> Result<Vec<MyProject>> {
    let records = tx.bindings_reaching_user(user.id).await?;
    let groups: BTreeSet<_> =
        records.iter().filter(|r| r.binding.subject.kind == SubjectKind::Group).map(|r| r.binding.subject.id).collect();
    let memberships = tx.group_memberships(&groups).await?;
    let role_names: BTreeMap<_, _> = records.iter().map(|r| (r.binding.role_id, r.role_identifier.clone())).collect();
    let status = [UserStatus { id: user.id, active: user.active }];
    let mut by_project: BTreeMap<Uuid, Vec<canopy_domain::Binding>> = BTreeMap::new();
    for r in records {
        by_project.entry(r.binding.project_id).or_default().push(r.binding);
    }
    let mut out = Vec::new();
    for (project_id, bs) in by_project {
        let eff = effective_project_roles(&bs, &memberships, &status, now);
        let Some(roles) = eff.get(&user.id) else { continue };
        let Some(project) = tx.project_by_id(project_id).await? else { continue };
        let Some(ws) = tx.workspace_by_id(project.workspace_id).await? else { continue };
        out.push(MyProject {
            workspace: ws.identifier,
            project: project.identifier,
            roles: roles.iter().filter_map(|r| role_names.get(r).cloned()).collect(),
        });
    }
    out.sort_by(|a, b| (&a.workspace, &a.project).cmp(&(&b.workspace, &b.project)));
    Ok(out)
}
