//! `canopy workspace ...` and `canopy member ...`.

use canopy_api_types::{
    CreateWorkspace, FourEyeChange, InviteMember, Member, SearchResult, UpdateMember, UpdateWorkspace, Workspace,
};
use clap::{Args, Subcommand};

use super::api::{self, CliError};
use super::{Ctx, ListOpts, Switch, workspace_role};

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// List the workspaces you are a member of; with --all every workspace (admins).
    List {
        /// Every workspace of the installation (admins).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a workspace.
    Show {
        /// The workspace's identifier.
        ws: String,
    },
    /// Create a workspace; you become its owner.
    Create {
        /// Identifier: lowercase letters, digits and dashes, 1 to 32 characters.
        ws: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Change a workspace's display name (managers).
    Rename {
        /// The workspace's identifier.
        ws: String,
        /// The new display name.
        #[arg(long)]
        name: String,
    },
    /// Delete a workspace without projects (owners). Its history is kept.
    Delete {
        /// The workspace's identifier.
        ws: String,
    },
    /// Give a workspace its own four-eye setting, or with --inherit make it
    /// follow the installation's again (admins; see `canopy settings`).
    FourEye {
        /// The workspace's identifier.
        ws: String,
        /// Whether changes to the workspace's bindings need approval.
        #[arg(long, value_enum, required_unless_present = "inherit", conflicts_with = "inherit")]
        enabled: Option<Switch>,
        /// Approvals a request needs from managers other than the requester,
        /// 1 to 10 (default: as many as the workspace needs now).
        #[arg(long, requires = "enabled", conflicts_with = "inherit")]
        approvals: Option<u32>,
        /// Follow the installation's four-eye setting again.
        #[arg(long)]
        inherit: bool,
    },
}

pub async fn workspace(ctx: &Ctx, cmd: WorkspaceCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        WorkspaceCommand::List { all, list } => {
            let path: &[&str] = if all { &["admin", "workspaces"] } else { &["workspaces"] };
            let (items, _) = client.list(path, &[], list.limit, list.page_size).await?;
            ctx.print_list::<Workspace>(items)
        }
        WorkspaceCommand::Show { ws } => ctx.print_one::<Workspace>(client.get(&["workspaces", &ws], &[]).await?),
        WorkspaceCommand::Create { ws, name } => {
            let created = client.post(&["workspaces"], &CreateWorkspace { identifier: ws, display_name: name }).await?;
            ctx.print_one::<Workspace>(created)
        }
        WorkspaceCommand::Rename { ws, name } => {
            let changed = client
                .patch(&["workspaces", &ws], &UpdateWorkspace { display_name: Some(name), ..Default::default() })
                .await?;
            ctx.print_one::<Workspace>(changed)
        }
        WorkspaceCommand::Delete { ws } => {
            client.delete(&["workspaces", &ws]).await?;
            ctx.done(format!("Deleted workspace {ws}"));
            Ok(())
        }
        WorkspaceCommand::FourEye { ws, enabled, approvals, inherit: _ } => {
            let setting = enabled.map(|e| FourEyeChange { enabled: Some(e.on()), approvals });
            let body = UpdateWorkspace { four_eye: Some(setting), ..Default::default() };
            ctx.print_one::<Workspace>(client.patch(&["workspaces", &ws], &body).await?)
        }
    }
}

/// Exactly one of the kinds of member to add.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct MemberTarget {
    /// A user, by username.
    #[arg(long)]
    user: Option<String>,
    /// An e-mail address: the user with it, else a pending invitation.
    #[arg(long)]
    email: Option<String>,
    /// A group, by identifier.
    #[arg(long)]
    group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List a workspace's current access: users, groups and pending invitations.
    List {
        /// The workspace's identifier.
        ws: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Add a user, a group or an e-mail address to a workspace with a role.
    Add {
        /// The workspace's identifier.
        ws: String,
        #[command(flatten)]
        target: MemberTarget,
        /// owner, manager or member (or workspace_owner, ...).
        #[arg(long)]
        role: String,
    },
    /// Change a member's workspace role.
    SetRole {
        /// The workspace's identifier.
        ws: String,
        /// user:NAME, group:IDENTIFIER or email:ADDRESS (a bare NAME means user:NAME).
        subject: String,
        /// owner, manager or member (or workspace_owner, ...).
        role: String,
    },
    /// Remove a member; their project bindings in the workspace end too.
    Remove {
        /// The workspace's identifier.
        ws: String,
        /// user:NAME, group:IDENTIFIER or email:ADDRESS (a bare NAME means user:NAME).
        subject: String,
    },
    /// Find users and groups by name, e-mail or identifier (type-ahead).
    Search {
        /// The workspace's identifier.
        ws: String,
        /// Part of a name, e-mail address, username or group identifier.
        query: String,
        /// At most this many matches, 1 to 50.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
        limit: Option<u32>,
    },
}

/// `alice` is `user:alice`, `a@example.org` is `email:a@example.org`.
fn subject(raw: &str) -> String {
    if raw.contains(':') {
        raw.to_owned()
    } else if raw.contains('@') {
        format!("email:{raw}")
    } else {
        format!("user:{raw}")
    }
}

pub async fn member(ctx: &Ctx, cmd: MemberCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        MemberCommand::List { ws, list } => {
            let (items, _) = client.list(&["workspaces", &ws, "members"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<Member>(items)
        }
        MemberCommand::Add { ws, target, role } => {
            let body = InviteMember {
                user: target.user,
                email: target.email,
                group: target.group,
                role: workspace_role(&role),
            };
            ctx.print_one::<Member>(client.post(&["workspaces", &ws, "members"], &body).await?)
        }
        MemberCommand::SetRole { ws, subject: s, role } => {
            let changed = client
                .patch(&["workspaces", &ws, "members", &subject(&s)], &UpdateMember { role: workspace_role(&role) })
                .await?;
            ctx.print_one::<Member>(changed)
        }
        MemberCommand::Remove { ws, subject: s } => {
            let s = subject(&s);
            client.delete(&["workspaces", &ws, "members", &s]).await?;
            ctx.done(format!("Removed {s} from workspace {ws}"));
            Ok(())
        }
        MemberCommand::Search { ws, query, limit } => {
            let mut q = vec![("q", query)];
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            let (items, _) = api::page_items(client.get(&["workspaces", &ws, "search"], &q).await?)?;
            ctx.print_list::<SearchResult>(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subject;

    #[test]
    fn bare_subjects_are_users_or_emails() {
        assert_eq!(subject("alice"), "user:alice");
        assert_eq!(subject("a@example.org"), "email:a@example.org");
        assert_eq!(subject("group:ops"), "group:ops");
    }
}
