//! Installation roles and workspace roles (WS2).

use std::fmt;
use std::str::FromStr;

use crate::names::InvalidValue;

/// Roles held across the whole installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstallationRole {
    /// Manages everything, in every workspace, without being a member (AD1).
    Admin,
    /// Registers platforms, landing zones and role mappings (AD5).
    PlatformEngineer,
    /// Provisions users and groups through SCIM (ID2): a role of
    /// installation API keys only, which can do nothing else.
    ScimProvisioner,
}

impl InstallationRole {
    /// Whether a person may hold the role (a SCIM provisioner is a key).
    pub fn for_people(self) -> bool {
        self != Self::ScimProvisioner
    }

    pub const ALL: [InstallationRole; 3] = [Self::Admin, Self::PlatformEngineer, Self::ScimProvisioner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::PlatformEngineer => "platform_engineer",
            Self::ScimProvisioner => "scim_provisioner",
        }
    }
}

impl FromStr for InstallationRole {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidValue("must be one of admin, platform_engineer, scim_provisioner".into()))
    }
}

impl fmt::Display for InstallationRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role in one workspace (WS2), ordered from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkspaceRole {
    /// Sees the workspace and its projects; no administration.
    Member,
    /// Administers the workspace, its projects and their access (WS7).
    Manager,
    /// A manager who also may grant and take the owner role and delete the workspace.
    Owner,
}

impl WorkspaceRole {
    pub const ALL: [WorkspaceRole; 3] = [Self::Member, Self::Manager, Self::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "workspace_member",
            Self::Manager => "workspace_manager",
            Self::Owner => "workspace_owner",
        }
    }

    /// The strongest of several roles a subject holds (directly and through groups).
    pub fn strongest(roles: impl IntoIterator<Item = WorkspaceRole>) -> Option<WorkspaceRole> {
        roles.into_iter().max()
    }
}

impl FromStr for WorkspaceRole {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidValue("must be one of workspace_owner, workspace_manager, workspace_member".into()))
    }
}

impl fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The project roles every installation starts with (AC4): identifier,
/// display name, description. Admins may add, rename and remove roles later.
pub const DEFAULT_PROJECT_ROLES: [(&str, &str, &str); 3] = [
    ("project_reader", "Project Reader", "Read-only access, e.g. for controllers."),
    ("project_user", "Project User", "Manages resources in the cloud platforms."),
    ("project_admin", "Project Admin", "Also changes the configuration of the project in the cloud platforms."),
];

/// Whether changing a member's workspace role from `old` to `new` (`None`:
/// removal) must first make sure the workspace keeps another owner (WS2):
/// it takes the owner role from a user. Owning groups do not count as the
/// owner that must remain, since they may be empty, so changing one is never
/// refused by this rule.
pub fn needs_another_owner(subject: crate::SubjectKind, old: WorkspaceRole, new: Option<WorkspaceRole>) -> bool {
    subject == crate::SubjectKind::User && old == WorkspaceRole::Owner && new != Some(WorkspaceRole::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws2_roles_parse_and_order() {
        for r in WorkspaceRole::ALL {
            assert_eq!(r.as_str().parse::<WorkspaceRole>(), Ok(r));
        }
        assert!(WorkspaceRole::Owner > WorkspaceRole::Manager);
        assert!(WorkspaceRole::Manager > WorkspaceRole::Member);
        assert_eq!(
            WorkspaceRole::strongest([WorkspaceRole::Member, WorkspaceRole::Manager]),
            Some(WorkspaceRole::Manager)
        );
        assert!("owner".parse::<WorkspaceRole>().is_err());
    }

    #[test]
    fn ws2_only_taking_the_owner_role_from_a_user_needs_another_owner() {
        use crate::SubjectKind::{Group, User};
        use WorkspaceRole::{Manager, Member, Owner};
        assert!(needs_another_owner(User, Owner, Some(Manager)));
        assert!(needs_another_owner(User, Owner, None));
        assert!(!needs_another_owner(User, Owner, Some(Owner)));
        assert!(!needs_another_owner(User, Manager, None));
        assert!(!needs_another_owner(Group, Owner, None));
        assert!(!needs_another_owner(User, Member, Some(Owner)));
    }
}
