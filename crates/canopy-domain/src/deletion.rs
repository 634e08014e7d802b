//! Deleting tenants and projects (DL1-DL5, AD5): the state machine.
//!
//! A deletion is requested (of a project, or of one tenant), then confirmed
//! by typing the project's identifier. Tenants on platforms with automatic
//! deletion (DL2) may be confirmed only when the platform reports no
//! resources left in them; Canopy then deletes them itself. Tenants on
//! platforms with manual deletion (DL3) wait for a platform engineer, who
//! confirms (done by hand) or declines. A project is gone only when every
//! tenant deletion succeeded (DL1); when any was declined, the project stays
//! with only the declined tenants (DL5).

use std::fmt;
use std::str::FromStr;

use crate::platforms::DeletionMode;

/// Where a tenant's deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantDeletion {
    /// Requested; waits for the typed confirmation.
    Requested,
    /// Confirmed on an automatic platform: the engine deletes it.
    Deleting,
    /// Confirmed on a manual platform: waits for a platform engineer.
    AwaitingEngineer,
    /// A platform engineer declined it; the tenant stays.
    Declined,
}

impl TenantDeletion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Deleting => "deleting",
            Self::AwaitingEngineer => "awaiting_engineer",
            Self::Declined => "declined",
        }
    }
}

impl FromStr for TenantDeletion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "requested" => Ok(Self::Requested),
            "deleting" => Ok(Self::Deleting),
            "awaiting_engineer" => Ok(Self::AwaitingEngineer),
            "declined" => Ok(Self::Declined),
            _ => Err(format!("unknown tenant deletion state {s:?}")),
        }
    }
}

impl fmt::Display for TenantDeletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a confirmation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    #[error("type the project's identifier {expected:?} to confirm")]
    WrongIdentifier { expected: String },
    #[error("nothing waits for confirmation")]
    NothingRequested,
    #[error("resources remain in tenants; remove them first")]
    ResourcesRemain,
}

/// A tenant as a confirmation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInDeletion {
    pub mode: DeletionMode,
    pub state: Option<TenantDeletion>,
    /// Resources the platform reports in the tenant (automatic platforms).
    pub resources: Vec<String>,
}

/// Confirm a requested deletion by typing the project's identifier: every
/// requested tenant moves on (automatic ones to `Deleting`, manual ones to
/// `AwaitingEngineer`), or nothing does.
pub fn confirm(
    typed: &str,
    project_identifier: &str,
    tenants: &[TenantInDeletion],
) -> Result<Vec<Option<TenantDeletion>>, ConfirmError> {
    if typed != project_identifier {
        return Err(ConfirmError::WrongIdentifier { expected: project_identifier.to_owned() });
    }
    let requested = |t: &&TenantInDeletion| t.state == Some(TenantDeletion::Requested);
    if !tenants.iter().any(|t| requested(&t)) {
        return Err(ConfirmError::NothingRequested);
    }
    if tenants.iter().filter(requested).any(|t| t.mode == DeletionMode::Automatic && !t.resources.is_empty()) {
        return Err(ConfirmError::ResourcesRemain);
    }
    Ok(tenants
        .iter()
        .map(|t| match (t.state, t.mode) {
            (Some(TenantDeletion::Requested), DeletionMode::Automatic) => Some(TenantDeletion::Deleting),
            (Some(TenantDeletion::Requested), DeletionMode::Manual) => Some(TenantDeletion::AwaitingEngineer),
            (other, _) => other,
        })
        .collect())
}

/// What becomes of a project being deleted, given its remaining tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectOutcome {
    /// Some tenant deletion is still under way.
    Wait,
    /// Every tenant deletion succeeded: the project goes (DL1).
    Delete,
    /// Every other tenant is gone and some were declined: the project stays
    /// with only those (DL5).
    KeepDeclined,
}

pub fn project_outcome(remaining: &[Option<TenantDeletion>]) -> ProjectOutcome {
    if remaining.iter().any(|s| !matches!(s, Some(TenantDeletion::Declined))) {
        ProjectOutcome::Wait
    } else if remaining.is_empty() {
        ProjectOutcome::Delete
    } else {
        ProjectOutcome::KeepDeclined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeletionMode::*;
    use TenantDeletion::*;

    fn t(mode: DeletionMode, state: Option<TenantDeletion>, resources: &[&str]) -> TenantInDeletion {
        TenantInDeletion { mode, state, resources: resources.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn dl4_a_mix_goes_automatically_and_waits_for_engineers() {
        let tenants = [t(Automatic, Some(Requested), &[]), t(Manual, Some(Requested), &[])];
        assert_eq!(confirm("web", "web", &tenants), Ok(vec![Some(Deleting), Some(AwaitingEngineer)]));
    }

    #[test]
    fn dl2_confirmation_needs_the_identifier_and_no_resources() {
        let clean = [t(Automatic, Some(Requested), &[])];
        assert_eq!(confirm("wbe", "web", &clean), Err(ConfirmError::WrongIdentifier { expected: "web".into() }));
        let dirty = [t(Automatic, Some(Requested), &["server vm-1"])];
        assert_eq!(confirm("web", "web", &dirty), Err(ConfirmError::ResourcesRemain));
        assert_eq!(confirm("web", "web", &[t(Automatic, None, &[])]), Err(ConfirmError::NothingRequested));
    }

    #[test]
    fn dl1_dl5_the_project_goes_only_when_every_tenant_went() {
        assert_eq!(project_outcome(&[]), ProjectOutcome::Delete);
        assert_eq!(project_outcome(&[Some(Deleting)]), ProjectOutcome::Wait);
        assert_eq!(project_outcome(&[Some(AwaitingEngineer), Some(Declined)]), ProjectOutcome::Wait);
        assert_eq!(project_outcome(&[Some(Declined)]), ProjectOutcome::KeepDeclined);
        assert_eq!(project_outcome(&[None]), ProjectOutcome::Wait);
    }
}
