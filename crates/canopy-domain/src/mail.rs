//! The e-mails Canopy sends, and when to retry one that could not be sent.

use time::Duration;

use crate::{Email, WorkspaceRole};

/// An e-mail to send: recipient, subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub body: String,
}

/// The announcement of a pending workspace invitation (WS3).
pub fn invitation(
    to: &Email,
    workspace_identifier: &str,
    workspace_name: &str,
    role: WorkspaceRole,
    invited_by: &str,
    public_url: Option<&str>,
) -> Mail {
    let role = match role {
        WorkspaceRole::Owner => "Workspace Owner",
        WorkspaceRole::Manager => "Workspace Manager",
        WorkspaceRole::Member => "Workspace Member",
    };
    let sign_in = match public_url {
        Some(url) => format!("Sign in to Canopy at {url} with an account that uses this e-mail address to accept it."),
        None => "Sign in to Canopy with an account that uses this e-mail address to accept it.".to_owned(),
    };
    Mail {
        to: to.clone(),
        subject: format!("You are invited to the workspace {workspace_name}"),
        body: format!(
            "Hello,\n\n{invited_by} invited {to} to the Canopy workspace {workspace_name} ({workspace_identifier}) \
             as {role}.\n\n{sign_in}\n\nIf you did not expect this invitation, you can ignore this message.\n"
        ),
    }
}

/// What happened to a person's project access (AC11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    Added,
    Changed,
    Removed,
    /// Expires within days (AC8): a reminder, sent once.
    ExpiringSoon,
    Expired,
}

/// The e-mail telling a person their access to a project changed (AC11).
/// `via` names the group the binding is for, when it is a group's.
pub struct AccessNotice<'a> {
    pub change: AccessChange,
    pub workspace: &'a str,
    pub project: &'a str,
    pub role: &'a str,
    pub expires_at: Option<time::OffsetDateTime>,
    pub via: Option<&'a str>,
    pub by: &'a str,
}

/// The subject and body of the e-mail telling a person their access to a
/// project changed (AC11), the same for every recipient.
pub fn access_changed(n: &AccessNotice<'_>) -> (String, String) {
    let subject_verb = match n.change {
        AccessChange::Added => "You were given",
        AccessChange::Changed => "Your access changed:",
        AccessChange::Removed => "You no longer have",
        AccessChange::ExpiringSoon => "Your access expires soon:",
        AccessChange::Expired => "Your access expired:",
    };
    let through = n.via.map(|g| format!(" through the group {g}")).unwrap_or_default();
    let until = match n.expires_at {
        Some(e) => {
            let e = e.to_offset(time::UtcOffset::UTC);
            let e = e.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| e.to_string());
            format!(" until {e}")
        }
        None => String::new(),
    };
    let what = format!("{} on project {} in workspace {}", n.role, n.project, n.workspace);
    let body = match n.change {
        AccessChange::Added => format!("{} gave you{through} the role {what}{until}.", n.by),
        AccessChange::Changed => format!("{} changed your{through} role to {what}{until}.", n.by),
        AccessChange::Removed => format!("{} removed your{through} role {what}.", n.by),
        AccessChange::ExpiringSoon => format!(
            "Your{through} role {what} expires{until}. Ask a manager of the workspace to extend it if you still need it."
        ),
        AccessChange::Expired => format!("Your{through} role {what} expired; it was removed from every tenant."),
    };
    (
        format!("{subject_verb} {} on {}", n.role, n.project),
        format!("Hello,\n\n{body}\n\nThis message was sent by Canopy; the project's history records the change.\n"),
    )
}

/// The reminder to a workspace's manager that a binding expires soon (AC12).
pub fn expiring_for_manager(to: &Email, subject: &str, n: &AccessNotice<'_>) -> Mail {
    let until = n
        .expires_at
        .map(|e| e.to_offset(time::UtcOffset::UTC))
        .and_then(|e| e.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    Mail {
        to: to.clone(),
        subject: format!("Access expires soon: {subject} on {}", n.project),
        body: format!(
            "Hello,\n\nThe role {} of {subject} on project {} in workspace {} expires at {until}.\n\n\
             Extend it on the workspace's expired-access list if it is still needed; otherwise it ends by itself.\n",
            n.role, n.project, n.workspace
        ),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A four-eye request as its e-mails describe it (FE1, FE2).
pub struct RequestNotice<'a> {
    pub id: &'a str,
    pub workspace: &'a str,
    pub project: &'a str,
    pub kind: crate::four_eye::RequestKind,
    /// `user:NAME` or `group:NAME`.
    pub subject: &'a str,
    pub role: &'a str,
    pub expires_at: Option<time::OffsetDateTime>,
    pub requester: &'a str,
    pub justification: &'a str,
    pub approvals_required: u32,
}

impl RequestNotice<'_> {
    fn what(&self) -> String {
        use crate::four_eye::RequestKind;
        let until = self.expires_at.map(|e| format!(" until {}", rfc3339(e))).unwrap_or_default();
        match self.kind {
            RequestKind::Add => format!("give {} the role {}{until}", self.subject, self.role),
            RequestKind::Change => format!("change the binding of {} to the role {}{until}", self.subject, self.role),
            RequestKind::Remove => format!("remove the role {} from {}", self.role, self.subject),
        }
    }
}

/// The request for approval sent to a workspace's managers, or to the
/// admins when the workspace has too few managers to approve it (FE1, FE3).
pub fn request_pending(to: &Email, n: &RequestNotice<'_>, needs_admin: bool) -> Mail {
    let who = if needs_admin {
        "The workspace has fewer managers than the approvals it needs, so it waits for an admin.".to_owned()
    } else {
        format!("It takes effect once {} manager(s) other than the requester approve it.", n.approvals_required)
    };
    Mail {
        to: to.clone(),
        subject: format!("Approval needed: {} on {}", n.subject, n.project),
        body: format!(
            "Hello,\n\n{} asks to {} on project {} in workspace {}.\n\nJustification: {}\n\n{who}\n\n\
             Approve or decline request {} on the workspace's pending requests.\n",
            n.requester,
            n.what(),
            n.project,
            n.workspace,
            n.justification,
            n.id
        ),
    }
}

/// The outcome of a request, sent to the requester (FE2).
pub fn request_decided(
    to: &Email,
    n: &RequestNotice<'_>,
    state: crate::four_eye::RequestState,
    by: &str,
    reason: Option<&str>,
) -> Mail {
    use crate::four_eye::RequestState;
    let outcome = match state {
        RequestState::Approved => format!("{by} approved it, and it took effect."),
        RequestState::Declined => format!("{by} declined it."),
        RequestState::Void => "It ended without taking effect.".to_owned(),
        RequestState::Pending => "It still waits for approval.".to_owned(),
    };
    let reason = reason.map(|r| format!("\n\nReason: {r}")).unwrap_or_default();
    Mail {
        to: to.clone(),
        subject: format!("Request {state}: {} on {}", n.subject, n.project),
        body: format!(
            "Hello,\n\nYour request to {} on project {} in workspace {} is {state}. {outcome}{reason}\n",
            n.what(),
            n.project,
            n.workspace
        ),
    }
}

/// The notice to a workspace's other managers and the admins that someone
/// bypassed four-eye with an emergency grant (AD3): break-glass access is
/// reviewed after the fact.
pub fn emergency_granted(to: &Email, n: &RequestNotice<'_>) -> Mail {
    Mail {
        to: to.clone(),
        subject: format!("Emergency access granted: {} on {}", n.subject, n.project),
        body: format!(
            "Hello,\n\n{} granted {} the role {} on project {} in workspace {} as emergency access{}, \
             without the approval the workspace's four-eye setting asks for.\n\nJustification: {}\n\n\
             Review it in the workspace's history; a manager or an admin can remove the binding.\n",
            n.requester,
            n.subject,
            n.role,
            n.project,
            n.workspace,
            n.expires_at.map(|e| format!(" until {}", rfc3339(e))).unwrap_or_default(),
            n.justification
        ),
    }
}

/// How long to wait before the next attempt after `attempts` failed ones:
/// 30 s, doubling, at most an hour.
pub fn retry_delay(attempts: i64) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    Duration::seconds((30i64 << doublings.min(7)).min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac11_access_mail_names_the_change_role_project_and_group() {
        let n = AccessNotice {
            change: AccessChange::Added,
            workspace: "team-a",
            project: "web",
            role: "project_user",
            expires_at: None,
            via: Some("devs"),
            by: "ann",
        };
        let (subject, body) = access_changed(&n);
        assert_eq!(subject, "You were given project_user on web");
        assert!(body.contains("ann gave you through the group devs the role project_user on project web"), "{body}");
        let (_, body) = access_changed(&AccessNotice { change: AccessChange::Removed, via: None, ..n });
        assert!(body.contains("ann removed your role project_user on project web in workspace team-a."), "{body}");
    }

    #[test]
    fn ws3_invitation_mail_names_workspace_role_and_inviter() {
        let to = Email::parse("dora@example.org").unwrap_or_else(|e| panic!("{e}"));
        let m = invitation(&to, "team-a", "Team A", WorkspaceRole::Manager, "ann", Some("https://canopy.example"));
        assert_eq!(m.subject, "You are invited to the workspace Team A");
        assert!(m.body.contains("ann invited dora@example.org"));
        assert!(m.body.contains("Workspace Manager"));
        assert!(m.body.contains("https://canopy.example"));
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::seconds(30));
        assert_eq!(retry_delay(2), Duration::seconds(60));
        assert_eq!(retry_delay(100), Duration::hours(1));
    }
}
