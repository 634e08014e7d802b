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
