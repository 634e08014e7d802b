//! `canopy emergency grant|revoke|show` (AD3, AD4).

use canopy_api_types::{EmergencyGrant, EmergencyGrantResult, EmergencyRevocation, EmergencyRevoke};
use clap::Subcommand;
use time::OffsetDateTime;

use super::api::{self, CliError};
use super::{Ctx, render, rfc3339};

#[derive(Debug, Subcommand)]
pub enum EmergencyCommand {
    /// Give a person a project role at once, until an expiration, without
    /// four-eye approval; they are made a member of the workspace if needed.
    Grant {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        /// The person's username.
        #[arg(long, required_unless_present = "email", conflicts_with = "email")]
        user: Option<String>,
        /// The person's e-mail address instead of the username.
        #[arg(long)]
        email: Option<String>,
        /// A project role identifier, e.g. project_admin.
        #[arg(long)]
        role: String,
        /// When the access ends (RFC 3339); required.
        #[arg(long, value_parser = rfc3339)]
        expires_at: OffsetDateTime,
        /// Why the access is needed; required.
        #[arg(long)]
        justification: String,
    },
    /// Take everything a person holds away at once: deactivate the account,
    /// end every membership and binding, remove them from every tenant (admins).
    Revoke {
        /// The person's username.
        user: String,
        /// Why (recorded in the history).
        #[arg(long)]
        justification: Option<String>,
    },
    /// An emergency revocation, with per tenant when the platform confirmed
    /// the removal (admins).
    Show {
        /// The revocation's id (printed by `canopy emergency revoke`).
        id: String,
    },
}

pub async fn emergency(ctx: &Ctx, cmd: EmergencyCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        EmergencyCommand::Grant { ws, project, user, email, role, expires_at, justification } => {
            let body = EmergencyGrant {
                user,
                email,
                workspace: ws,
                project,
                role,
                expires_at: Some(expires_at),
                justification: Some(justification),
            };
            let v = client.post(&["admin", "emergency", "grant"], &body).await?;
            if ctx.json() {
                render::json(&v);
                return Ok(());
            }
            let g: EmergencyGrantResult = api::decode(v)?;
            render::lines(render::fields(&[
                ("user", g.user),
                ("workspace", g.workspace),
                ("project", g.project),
                ("role", g.role),
                ("expires_at", render::opt_time(g.expires_at)),
                ("binding", g.binding.to_string()),
                ("member_added", render::yes_no(g.member_added)),
            ]));
            Ok(())
        }
        EmergencyCommand::Revoke { user, justification } => {
            let body = EmergencyRevoke { user: Some(user), email: None, justification };
            let v = client.post(&["admin", "emergency", "revoke"], &body).await?;
            print_revocation(ctx, v)
        }
        EmergencyCommand::Show { id } => {
            let v = client.get(&["admin", "emergency", "revocations", &id], &[]).await?;
            print_revocation(ctx, v)
        }
    }
}

/// What was removed, then one line per tenant assignment with the instant
/// the platform confirmed its removal (`pending` until then).
fn print_revocation(ctx: &Ctx, v: serde_json::Value) -> Result<(), CliError> {
    if ctx.json() {
        render::json(&v);
        return Ok(());
    }
    let r: EmergencyRevocation = api::decode(v)?;
    let memberships: Vec<String> = r.memberships.iter().map(|m| format!("{} ({})", m.workspace, m.role)).collect();
    let bindings: Vec<String> =
        r.bindings.iter().map(|b| format!("{}/{}:{}", b.workspace, b.project, b.role)).collect();
    let mut out = render::fields(&[
        ("id", r.id.to_string()),
        ("user", r.user.clone()),
        ("requested_at", render::time(r.requested_at)),
        ("initiator", r.initiator.clone()),
        ("justification", render::opt(r.justification.as_deref())),
        ("deactivated", render::yes_no(r.deactivated)),
        ("memberships", render::list(&memberships)),
        ("groups", render::list(&r.groups)),
        ("bindings", render::list(&bindings)),
        ("complete", render::yes_no(r.complete)),
    ]);
    let rows: Vec<Vec<String>> = r
        .tenants
        .iter()
        .flat_map(|t| {
            t.assignments.iter().map(move |a| {
                vec![
                    t.workspace.clone(),
                    t.project.clone(),
                    t.platform.clone(),
                    a.platform_role.clone(),
                    a.confirmed_at.map_or_else(|| "pending".into(), render::time),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push(String::new());
        out.extend(render::table(&["WORKSPACE", "PROJECT", "PLATFORM", "ROLE", "REMOVED"], &rows));
    }
    render::lines(out);
    Ok(())
}
