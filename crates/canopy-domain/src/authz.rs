//! Authorisation: the one place that decides who may do what (WS2, WS7, AD1, ID3).
//!
//! The server resolves the caller into an [`Actor`] and its effective role in
//! the workspace concerned, then asks [`authorize`]. No handler decides on its own.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::four_eye::Approver;
use crate::roles::{InstallationRole, WorkspaceRole};

/// Who is calling: a person (session token) or an API key (service account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Uuid,
    /// Username or API key name, as shown in the history.
    pub name: String,
    /// Installation roles of the user, or of an installation-scoped API key.
    pub installation_roles: BTreeSet<InstallationRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    /// An API key scoped to the installation.
    InstallationKey,
    /// An API key scoped to one workspace, holding one workspace role there.
    WorkspaceKey {
        workspace_id: Uuid,
        role: WorkspaceRole,
    },
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.installation_roles.contains(&InstallationRole::Admin)
    }

    /// A SCIM provisioning key: it may do nothing but SCIM.
    pub fn scim_only(&self) -> bool {
        self.installation_roles.contains(&InstallationRole::ScimProvisioner)
    }

    pub fn is_user(&self) -> bool {
        self.kind == ActorKind::User
    }
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a workspace (the creating user becomes its owner).
    CreateWorkspace,
    /// List or create users, change or delete other users, list every API key.
    AdministerUsers,
    /// Create, change or delete groups and their members.
    AdministerGroups,
    /// Create, change or delete project roles.
    AdministerProjectRoles,
    /// The admin area: every workspace, history verification.
    AdministerInstallation,
    /// Create an API key scoped to the installation.
    CreateInstallationKey,
    /// Register, change and remove platforms and landing zones (AD5).
    AdministerPlatforms,
    /// Send a platform's stored secrets to a new address (a changed URL or
    /// CA certificate) without giving them again (SE4): admins only; anyone
    /// else who administers platforms gives the secrets again.
    RedirectPlatformSecrets,
    /// See a workspace, its members, projects and bindings.
    ViewWorkspace,
    /// Page through a workspace's history (HI2).
    ViewHistory,
    /// Rename the workspace; invite and remove members; manage projects and
    /// bindings of every project in it (WS7); create workspace API keys.
    ManageWorkspace,
    /// Grant or take away the owner role; delete the workspace.
    OwnWorkspace,
    /// Grant emergency access (AD3): the workspace's managers in person, or
    /// admins (an installation-scope admin key included). A workspace key
    /// cannot: automation scoped to a workspace must not break glass past
    /// four-eye.
    GrantEmergencyAccess,
    /// See or change one account, or end its sessions: the person themself,
    /// signed in (not through a key), or admins. `user` is the account, or
    /// `None` when no account has the name asked for: then only admins may
    /// learn so.
    ActOnAccount { user: Option<Uuid> },
    /// Create, list and revoke one's API keys: people only, so that a key
    /// can neither mint nor revoke keys.
    ManageApiKeys,
    /// Approve a four-eye request (FE2, FE3): people only, so that an
    /// approval always has a person's name on it; whether this person may
    /// approve this request is the four-eye rule's (`four_eye::approve`).
    ApproveRequest,
    /// Approve on one's own say (FE3): an admin's approval applies a request
    /// at once, and an admin's emergency grant (in person or through an
    /// installation admin key) goes to nobody for review
    /// (`four_eye::emergency_reviewed`).
    ApproveAlone,
    /// Reach a request of the workspace concerned to decide on it (FE2):
    /// admins in person, anyone with a role in the workspace (what they may
    /// decide is the four-eye rule's, `four_eye::approve` and
    /// `four_eye::decline`, so a requester demoted to member still withdraws
    /// their request), and the API key the request was filed with
    /// (`filed_with`), whatever its scope, to withdraw it. Nobody else
    /// learns anything of the workspace's requests.
    DecideRequest { filed_with: Option<Uuid> },
    /// See who a group gives access to: admins, and the managers of a
    /// workspace the group is a member of (given as the workspace concerned,
    /// asked once per such workspace; none when it is in none).
    ViewGroupMembers,
    /// Revoke one API key, made by `creator`: its creator in person, admins,
    /// or in person the managers of the key's workspace (given as the
    /// workspace concerned; none for an installation key).
    RevokeApiKey { creator: Option<Uuid> },
    /// Provision users and groups through SCIM (ID2): installation keys
    /// with the role scim_provisioner, and nobody else (an identity
    /// provider, not a person).
    ProvisionIdentities,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this needs the installation role admin")]
    NeedsAdmin,
    #[error("this needs the installation role platform_engineer or admin")]
    NeedsPlatformEngineer,
    #[error("you are not a member of this workspace")]
    NotAMember,
    #[error("this needs the workspace role {0} or higher")]
    NeedsWorkspaceRole(WorkspaceRole),
    #[error("an API key cannot do this; sign in as a person")]
    NotForApiKeys,
    #[error("this API key is scoped to another workspace")]
    OutOfScope,
    #[error("emergency access is granted by a person or an installation-scope admin key, never by a workspace key")]
    NotForWorkspaceKeys,
    #[error("this needs an installation API key with the role scim_provisioner")]
    NeedsScimKey,
    #[error("this API key is for SCIM provisioning (/scim/v2) only")]
    ScimOnly,
}

/// The caller's effective role in a workspace: for a person, the strongest of
/// their direct membership and their groups' memberships; for a workspace API
/// key, its own role there. `workspace_id` is the workspace concerned.
pub fn effective_workspace_role(
    actor: &Actor,
    workspace_id: Uuid,
    membership_roles: impl IntoIterator<Item = WorkspaceRole>,
) -> Option<WorkspaceRole> {
    match actor.kind {
        ActorKind::User => WorkspaceRole::strongest(membership_roles),
        ActorKind::InstallationKey => None,
        ActorKind::WorkspaceKey { workspace_id: scope, role } => (scope == workspace_id).then_some(role),
    }
}

/// Decide whether `actor` may perform `action`. `workspace` is the workspace
/// concerned with the actor's effective role there, for workspace actions.
pub fn authorize(
    actor: &Actor,
    action: Action,
    workspace: Option<(Uuid, Option<WorkspaceRole>)>,
) -> Result<(), Denied> {
    use Action::*;
    let needs_role = |needed: WorkspaceRole| -> Result<(), Denied> {
        if actor.is_admin() {
            return Ok(());
        }
        let Some((ws_id, role)) = workspace else {
            return Err(Denied::NotAMember);
        };
        if let ActorKind::WorkspaceKey { workspace_id, .. } = actor.kind
            && workspace_id != ws_id
        {
            return Err(Denied::OutOfScope);
        }
        match role {
            None => Err(Denied::NotAMember),
            Some(r) if r >= needed => Ok(()),
            Some(_) => Err(Denied::NeedsWorkspaceRole(needed)),
        }
    };
    if actor.scim_only() && action != ProvisionIdentities {
        return Err(Denied::ScimOnly);
    }
    match action {
        ProvisionIdentities => {
            if actor.kind == ActorKind::InstallationKey
                && actor.installation_roles.contains(&InstallationRole::ScimProvisioner)
            {
                Ok(())
            } else {
                Err(Denied::NeedsScimKey)
            }
        }
        CreateWorkspace => match actor.kind {
            ActorKind::User => Ok(()),
            ActorKind::InstallationKey if actor.is_admin() => Ok(()),
            ActorKind::InstallationKey => Err(Denied::NeedsAdmin),
            ActorKind::WorkspaceKey { .. } => Err(Denied::OutOfScope),
        },
        AdministerPlatforms => {
            if actor.is_admin() || actor.installation_roles.contains(&InstallationRole::PlatformEngineer) {
                Ok(())
            } else {
                Err(Denied::NeedsPlatformEngineer)
            }
        }
        AdministerUsers
        | AdministerGroups
        | AdministerProjectRoles
        | AdministerInstallation
        | CreateInstallationKey
        | RedirectPlatformSecrets
        | ApproveAlone => {
            if actor.is_admin() {
                Ok(())
            } else {
                Err(Denied::NeedsAdmin)
            }
        }
        ViewWorkspace => needs_role(WorkspaceRole::Member),
        ViewHistory | ManageWorkspace | ViewGroupMembers => needs_role(WorkspaceRole::Manager),
        OwnWorkspace => needs_role(WorkspaceRole::Owner),
        GrantEmergencyAccess => match actor.kind {
            ActorKind::WorkspaceKey { .. } => Err(Denied::NotForWorkspaceKeys),
            ActorKind::User | ActorKind::InstallationKey => needs_role(WorkspaceRole::Manager),
        },
        ManageApiKeys | ApproveRequest => match actor.kind {
            ActorKind::User => Ok(()),
            ActorKind::InstallationKey | ActorKind::WorkspaceKey { .. } => Err(Denied::NotForApiKeys),
        },
        DecideRequest { filed_with } => match actor.kind {
            _ if filed_with == Some(actor.id) => Ok(()),
            // an installation key holds no workspace role, and an admin's
            // decides nothing: admins decide in person
            ActorKind::InstallationKey => Err(Denied::NotForApiKeys),
            ActorKind::User | ActorKind::WorkspaceKey { .. } => needs_role(WorkspaceRole::Member),
        },
        RevokeApiKey { creator } => {
            if !actor.is_user() {
                Err(Denied::NotForApiKeys)
            } else if actor.is_admin() || creator == Some(actor.id) {
                Ok(())
            } else if workspace.is_some() {
                needs_role(WorkspaceRole::Manager)
            } else {
                Err(Denied::NeedsAdmin)
            }
        }
        ActOnAccount { user } => {
            if actor.is_admin() || (actor.is_user() && user == Some(actor.id)) {
                Ok(())
            } else {
                Err(Denied::NeedsAdmin)
            }
        }
    }
}

/// What the four-eye rules know of `actor` deciding on a request of the
/// workspace concerned, given with the actor's effective role there: only
/// people approve (FE2); an admin's approval applies at once (FE3); the
/// others who manage the workspace approve toward its approvals.
pub fn approver(actor: &Actor, workspace: (Uuid, Option<WorkspaceRole>)) -> Approver {
    let person = authorize(actor, Action::ApproveRequest, None).is_ok();
    Approver {
        id: actor.id,
        is_admin: person && authorize(actor, Action::ApproveAlone, None).is_ok(),
        is_manager: person && authorize(actor, Action::ManageWorkspace, Some(workspace)).is_ok(),
    }
}

/// Whether `actor` may revoke everything the person `user` holds (AD4),
/// given that they may revoke access at all: never their own, in person,
/// so that nobody locks themself out in one slip (another admin does it).
/// An API key is not its creator: what it may do to its creator's account
/// is left to the rule that the installation keeps an active admin.
pub fn may_revoke_access_of(actor: &Actor, user: Uuid) -> bool {
    !(actor.is_user() && actor.id == user)
}

/// A manager may hand out roles up to manager; only owners (and admins) may
/// grant, change or take away the owner role.
pub fn action_to_grant(role: WorkspaceRole) -> Action {
    if role == WorkspaceRole::Owner { Action::OwnWorkspace } else { Action::ManageWorkspace }
}

/// What a caller must be allowed to do to hand a role to an API key: a key
/// holds at most its creator's own role in the workspace.
pub fn action_to_hold(role: WorkspaceRole) -> Action {
    match role {
        WorkspaceRole::Member => Action::ViewWorkspace,
        WorkspaceRole::Manager => Action::ManageWorkspace,
        WorkspaceRole::Owner => Action::OwnWorkspace,
    }
}

/// The workspace role a workspace key acts with now: its own role, but never
/// more than its creator holds in that workspace today. A key outlives
/// neither its creator's membership nor a demotion. Creators who are admins
/// are not capped (they may act in every workspace).
pub fn workspace_key_role(
    key_role: WorkspaceRole,
    creator_is_admin: bool,
    creator_role: Option<WorkspaceRole>,
) -> Option<WorkspaceRole> {
    if creator_is_admin {
        return Some(key_role);
    }
    creator_role.map(|held| key_role.min(held))
}

/// The installation role an installation key acts with now: its role, only
/// while its creator still holds it (an admin holds every installation role).
pub fn installation_key_role(
    key_role: InstallationRole,
    creator_roles: &BTreeSet<InstallationRole>,
) -> Option<InstallationRole> {
    (creator_roles.contains(&key_role) || creator_roles.contains(&InstallationRole::Admin)).then_some(key_role)
}

#[cfg(test)]
mod tests {
    #[test]
    fn id2_a_scim_key_provisions_and_does_nothing_else() {
        let scim = Actor {
            kind: ActorKind::InstallationKey,
            id: Uuid::new_v4(),
            name: "entra".into(),
            installation_roles: [InstallationRole::ScimProvisioner].into(),
        };
        assert_eq!(authorize(&scim, Action::ProvisionIdentities, None), Ok(()));
        let ws = Some((Uuid::new_v4(), Some(WorkspaceRole::Owner)));
        for action in
            [Action::AdministerUsers, Action::CreateWorkspace, Action::ViewWorkspace, Action::AdministerPlatforms]
        {
            assert_eq!(authorize(&scim, action, ws), Err(Denied::ScimOnly), "{action:?}");
        }
        let admin = user(&[InstallationRole::Admin]);
        assert_eq!(authorize(&admin, Action::ProvisionIdentities, None), Err(Denied::NeedsScimKey));
        assert!(!InstallationRole::ScimProvisioner.for_people());
    }

    use super::*;

    fn user(roles: &[InstallationRole]) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Uuid::new_v4(),
            name: "ann".into(),
            installation_roles: roles.iter().copied().collect(),
        }
    }

    #[test]
    fn id1_an_account_is_for_its_person_in_person_and_for_admins() {
        let ann = user(&[]);
        let admin = user(&[InstallationRole::Admin]);
        let own = Action::ActOnAccount { user: Some(ann.id) };
        let other = Action::ActOnAccount { user: Some(admin.id) };
        let nobody = Action::ActOnAccount { user: None };
        assert_eq!(authorize(&ann, own, None), Ok(()));
        assert_eq!(authorize(&ann, other, None), Err(Denied::NeedsAdmin));
        assert_eq!(authorize(&ann, nobody, None), Err(Denied::NeedsAdmin));
        assert_eq!(authorize(&admin, other, None), Ok(()));
        assert_eq!(authorize(&admin, nobody, None), Ok(()));
        // a key of ann's, even one with her id's creator, is not ann in person
        let key = Actor { kind: ActorKind::InstallationKey, id: Uuid::new_v4(), ..ann.clone() };
        assert_eq!(authorize(&key, Action::ActOnAccount { user: Some(key.id) }, None), Err(Denied::NeedsAdmin));
    }

    #[test]
    fn id3_keys_are_managed_by_people_and_revoked_by_their_creator_admins_or_managers() {
        let ws = Uuid::new_v4();
        let ann = user(&[]);
        let admin = user(&[InstallationRole::Admin]);
        let key =
            Actor { kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Owner }, ..ann.clone() };
        assert_eq!(authorize(&ann, Action::ManageApiKeys, None), Ok(()));
        assert_eq!(authorize(&key, Action::ManageApiKeys, None), Err(Denied::NotForApiKeys));
        // approvals carry a person's name (FE2)
        assert_eq!(authorize(&ann, Action::ApproveRequest, None), Ok(()));
        assert_eq!(authorize(&key, Action::ApproveRequest, None), Err(Denied::NotForApiKeys));
        let anns = Action::RevokeApiKey { creator: Some(ann.id) };
        let others = Action::RevokeApiKey { creator: Some(admin.id) };
        assert_eq!(authorize(&ann, anns, None), Ok(()));
        assert_eq!(authorize(&admin, anns, None), Ok(()));
        assert_eq!(authorize(&ann, others, None), Err(Denied::NeedsAdmin));
        assert_eq!(authorize(&ann, others, Some((ws, Some(WorkspaceRole::Manager)))), Ok(()));
        assert!(authorize(&ann, others, Some((ws, Some(WorkspaceRole::Member)))).is_err());
        assert_eq!(authorize(&key, anns, Some((ws, Some(WorkspaceRole::Owner)))), Err(Denied::NotForApiKeys));
    }

    #[test]
    fn fe2_a_request_is_reached_by_its_workspace_and_the_key_it_was_filed_with() {
        let ws = Uuid::new_v4();
        let ann = user(&[]);
        let admin = user(&[InstallationRole::Admin]);
        let reach =
            |actor: &Actor, filed_with, role| authorize(actor, Action::DecideRequest { filed_with }, Some((ws, role)));
        // anyone with a role in the workspace reaches it; what they may decide is four-eye's
        for role in [WorkspaceRole::Member, WorkspaceRole::Manager, WorkspaceRole::Owner] {
            assert_eq!(reach(&ann, None, Some(role)), Ok(()));
        }
        assert_eq!(reach(&admin, None, None), Ok(()), "admins in person");
        // outsiders learn nothing of the workspace's requests
        assert_eq!(reach(&ann, None, None), Err(Denied::NotAMember));
        // the key a request was filed with reaches it whatever its scope; other keys do not
        let elsewhere = Uuid::new_v4();
        let ws_key = Actor {
            kind: ActorKind::WorkspaceKey { workspace_id: elsewhere, role: WorkspaceRole::Manager },
            ..user(&[])
        };
        assert_eq!(reach(&ws_key, Some(ws_key.id), None), Ok(()));
        assert_eq!(reach(&ws_key, None, None), Err(Denied::OutOfScope));
        let admin_key = Actor { kind: ActorKind::InstallationKey, ..user(&[InstallationRole::Admin]) };
        assert_eq!(reach(&admin_key, Some(admin_key.id), None), Ok(()));
        assert_eq!(reach(&admin_key, Some(ws_key.id), None), Err(Denied::NotForApiKeys), "admins decide in person");
        // a key of the workspace reaches it (and may decide only what it filed)
        let here =
            Actor { kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Member }, ..user(&[]) };
        assert_eq!(reach(&here, None, Some(WorkspaceRole::Member)), Ok(()));
    }

    #[test]
    fn fe3_approvers_are_people_who_manage_the_workspace_and_admins_approve_alone() {
        let ws = Uuid::new_v4();
        let facts = |actor: &Actor, role| {
            let a = approver(actor, (ws, role));
            assert_eq!(a.id, actor.id);
            (a.is_admin, a.is_manager)
        };
        let ann = user(&[]);
        assert_eq!(facts(&ann, Some(WorkspaceRole::Owner)), (false, true));
        assert_eq!(facts(&ann, Some(WorkspaceRole::Manager)), (false, true));
        assert_eq!(facts(&ann, Some(WorkspaceRole::Member)), (false, false));
        assert_eq!(facts(&ann, None), (false, false));
        // admins manage every workspace (AD1) and approve alone (FE3)
        assert_eq!(facts(&user(&[InstallationRole::Admin]), None), (true, true));
        assert_eq!(facts(&user(&[InstallationRole::PlatformEngineer]), None), (false, false));
        // keys never approve (FE2), whatever they hold
        let admin_key = Actor { kind: ActorKind::InstallationKey, ..user(&[InstallationRole::Admin]) };
        assert_eq!(facts(&admin_key, None), (false, false));
        let ws_key =
            Actor { kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Manager }, ..user(&[]) };
        assert_eq!(facts(&ws_key, Some(WorkspaceRole::Manager)), (false, false));
        // yet an admin's key settles its emergency grants alone (nobody reviews them)
        assert_eq!(authorize(&admin_key, Action::ApproveAlone, None), Ok(()));
        assert_eq!(authorize(&ann, Action::ApproveAlone, None), Err(Denied::NeedsAdmin));
    }

    #[test]
    fn ws2_group_members_are_shown_only_to_admins_and_managers_of_its_workspaces() {
        let ws = Uuid::new_v4();
        let ann = user(&[]);
        let view = |actor: &Actor, workspace| authorize(actor, Action::ViewGroupMembers, workspace);
        assert_eq!(view(&user(&[InstallationRole::Admin]), None), Ok(()), "admins: every group");
        assert!(view(&ann, None).is_err(), "a group in no workspace: admins only");
        assert_eq!(view(&ann, Some((ws, Some(WorkspaceRole::Manager)))), Ok(()));
        assert_eq!(view(&ann, Some((ws, Some(WorkspaceRole::Owner)))), Ok(()));
        assert_eq!(
            view(&ann, Some((ws, Some(WorkspaceRole::Member)))),
            Err(Denied::NeedsWorkspaceRole(WorkspaceRole::Manager))
        );
        assert_eq!(view(&ann, Some((ws, None))), Err(Denied::NotAMember));
        let key =
            Actor { kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Manager }, ..user(&[]) };
        assert_eq!(view(&key, Some((ws, Some(WorkspaceRole::Manager)))), Ok(()));
        assert_eq!(view(&key, Some((Uuid::new_v4(), None))), Err(Denied::OutOfScope));
        assert!(view(&user(&[InstallationRole::PlatformEngineer]), None).is_err());
    }

    #[test]
    fn ad4_nobody_revokes_their_own_access_in_person() {
        let admin = user(&[InstallationRole::Admin]);
        let other = user(&[]);
        assert!(may_revoke_access_of(&admin, other.id));
        assert!(!may_revoke_access_of(&admin, admin.id));
        // the same name is not the same person: ids decide
        let namesake = Actor { id: Uuid::new_v4(), ..admin.clone() };
        assert!(may_revoke_access_of(&namesake, admin.id));
        // a key is not its creator in person
        let key = Actor { kind: ActorKind::InstallationKey, ..admin.clone() };
        assert!(may_revoke_access_of(&key, other.id));
    }

    #[test]
    fn se4_only_admins_send_a_platforms_secrets_to_a_new_address_without_them() {
        let redirect = |roles: &[InstallationRole]| authorize(&user(roles), Action::RedirectPlatformSecrets, None);
        assert_eq!(redirect(&[InstallationRole::Admin]), Ok(()));
        assert_eq!(redirect(&[InstallationRole::PlatformEngineer]), Err(Denied::NeedsAdmin));
        assert_eq!(redirect(&[]), Err(Denied::NeedsAdmin));
    }

    #[test]
    fn ws2_workspace_roles_are_ordered_in_authorisation() {
        let ws = Uuid::new_v4();
        let a = user(&[]);
        let check = |role, action| authorize(&a, action, Some((ws, role))).is_ok();
        assert!(check(Some(WorkspaceRole::Member), Action::ViewWorkspace));
        assert!(!check(Some(WorkspaceRole::Member), Action::ManageWorkspace));
        assert!(!check(Some(WorkspaceRole::Member), Action::ViewHistory));
        assert!(check(Some(WorkspaceRole::Manager), Action::ManageWorkspace));
        assert!(!check(Some(WorkspaceRole::Manager), Action::OwnWorkspace));
        assert!(check(Some(WorkspaceRole::Owner), Action::OwnWorkspace));
        assert!(!check(None, Action::ViewWorkspace));
    }

    #[test]
    fn ad3_workspace_keys_never_break_glass() {
        let ws = Uuid::new_v4();
        let manager = Some((ws, Some(WorkspaceRole::Manager)));
        assert!(authorize(&user(&[]), Action::GrantEmergencyAccess, manager).is_ok());
        let ws_key =
            Actor { kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Owner }, ..user(&[]) };
        let owner = Some((ws, Some(WorkspaceRole::Owner)));
        assert_eq!(authorize(&ws_key, Action::GrantEmergencyAccess, owner), Err(Denied::NotForWorkspaceKeys));
        let admin_key = Actor { kind: ActorKind::InstallationKey, ..user(&[InstallationRole::Admin]) };
        assert!(authorize(&admin_key, Action::GrantEmergencyAccess, Some((ws, None))).is_ok());
        let engineer_key = Actor { kind: ActorKind::InstallationKey, ..user(&[InstallationRole::PlatformEngineer]) };
        assert!(authorize(&engineer_key, Action::GrantEmergencyAccess, Some((ws, None))).is_err());
    }

    #[test]
    fn ad5_platform_engineers_administer_platforms_and_nothing_else() {
        let pe = user(&[InstallationRole::PlatformEngineer]);
        assert!(authorize(&pe, Action::AdministerPlatforms, None).is_ok());
        assert!(authorize(&pe, Action::AdministerUsers, None).is_err());
        assert!(authorize(&user(&[InstallationRole::Admin]), Action::AdministerPlatforms, None).is_ok());
        assert_eq!(authorize(&user(&[]), Action::AdministerPlatforms, None), Err(Denied::NeedsPlatformEngineer));
    }

    #[test]
    fn ad1_admins_act_in_any_workspace_without_membership() {
        let a = user(&[InstallationRole::Admin]);
        for action in [Action::ViewWorkspace, Action::ManageWorkspace, Action::OwnWorkspace, Action::ViewHistory] {
            assert!(authorize(&a, action, Some((Uuid::new_v4(), None))).is_ok());
        }
    }

    #[test]
    fn id3_keys_never_hold_more_than_their_creator_holds_now() {
        use WorkspaceRole::*;
        assert_eq!(workspace_key_role(Manager, false, Some(Manager)), Some(Manager));
        assert_eq!(workspace_key_role(Manager, false, Some(Member)), Some(Member), "demoted creator");
        assert_eq!(workspace_key_role(Member, false, Some(Owner)), Some(Member));
        assert_eq!(workspace_key_role(Manager, false, None), None, "creator left the workspace");
        assert_eq!(workspace_key_role(Manager, true, None), Some(Manager));
        let none = BTreeSet::new();
        let admin = BTreeSet::from([InstallationRole::Admin]);
        let pe = BTreeSet::from([InstallationRole::PlatformEngineer]);
        assert_eq!(installation_key_role(InstallationRole::Admin, &admin), Some(InstallationRole::Admin));
        assert_eq!(installation_key_role(InstallationRole::Admin, &none), None);
        assert_eq!(installation_key_role(InstallationRole::Admin, &pe), None);
        assert_eq!(
            installation_key_role(InstallationRole::PlatformEngineer, &admin),
            Some(InstallationRole::PlatformEngineer)
        );
    }

    #[test]
    fn id3_workspace_key_acts_only_in_its_workspace() {
        let ws = Uuid::new_v4();
        let key = Actor {
            kind: ActorKind::WorkspaceKey { workspace_id: ws, role: WorkspaceRole::Manager },
            id: Uuid::new_v4(),
            name: "ci".into(),
            installation_roles: BTreeSet::new(),
        };
        let role_here = effective_workspace_role(&key, ws, []);
        assert!(authorize(&key, Action::ManageWorkspace, Some((ws, role_here))).is_ok());
        let other = Uuid::new_v4();
        let role_there = effective_workspace_role(&key, other, [WorkspaceRole::Owner]);
        assert_eq!(authorize(&key, Action::ViewWorkspace, Some((other, role_there))), Err(Denied::OutOfScope));
        assert!(authorize(&key, Action::CreateWorkspace, None).is_err());
    }
}
