//! `canopy request ...`: four-eye requests, changes to project bindings
//! waiting for approval (FE1–FE4, AD2).

use canopy_api_types::{DecideRequest, RoleRequest};
use clap::Subcommand;
use serde_json::Value;

use super::api::{self, CliError};
use super::{Ctx, ListOpts, render};

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List the four-eye requests of a workspace (managers), or with
    /// --all-workspaces of every workspace (admins); pending ones unless
    /// --state says otherwise.
    List {
        /// The workspace's identifier (or --all-workspaces instead).
        #[arg(required_unless_present = "all_workspaces", conflicts_with = "all_workspaces")]
        ws: Option<String>,
        /// Which requests.
        #[arg(long, default_value = "pending", value_parser = ["pending", "approved", "declined", "void", "all"])]
        state: String,
        /// Every workspace's requests (admins).
        #[arg(long)]
        all_workspaces: bool,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a request with its approvals.
    Show {
        /// The workspace's identifier.
        ws: String,
        /// The request's id (see `canopy request list`).
        id: String,
    },
    /// Approve a request (managers other than the requester, admins). It
    /// applies once it has the approvals it needs, or at once when an admin approves.
    Approve {
        /// The workspace's identifier.
        ws: String,
        /// The request's id (see `canopy request list`).
        id: String,
        /// Why (recorded in the history and sent to the requester).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Decline a request (managers, admins), or withdraw your own: it ends without effect.
    Decline {
        /// The workspace's identifier.
        ws: String,
        /// The request's id (see `canopy request list`).
        id: String,
        /// Why (recorded in the history and sent to the requester).
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn request(ctx: &Ctx, cmd: RequestCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        RequestCommand::List { ws, state, all_workspaces: _, list } => {
            let q = vec![("state", state)];
            let path = match &ws {
                Some(ws) => vec!["workspaces", ws.as_str(), "requests"],
                None => vec!["admin", "requests"],
            };
            let (items, _) = client.list(&path, &q, list.limit, list.page_size).await?;
            ctx.print_list::<RoleRequest>(items)
        }
        RequestCommand::Show { ws, id } => {
            ctx.print_one::<RoleRequest>(client.get(&["workspaces", &ws, "requests", &id], &[]).await?)
        }
        RequestCommand::Approve { ws, id, reason } => {
            let v = client.post(&["workspaces", &ws, "requests", &id, "approve"], &DecideRequest { reason }).await?;
            print_decided(ctx, v)
        }
        RequestCommand::Decline { ws, id, reason } => {
            let v = client.post(&["workspaces", &ws, "requests", &id, "decline"], &DecideRequest { reason }).await?;
            print_decided(ctx, v)
        }
    }
}

/// A request after an approval or a decline: what became of it, then the request.
fn print_decided(ctx: &Ctx, v: Value) -> Result<(), CliError> {
    if ctx.json() {
        render::json(&v);
        return Ok(());
    }
    let r: RoleRequest = api::decode(v)?;
    let given = r.approvals.len();
    let summary = match r.state.as_str() {
        "approved" => format!("Approved request {}: the change is applied", r.id),
        "pending" => format!(
            "Approval recorded ({given}/{}): request {} waits for {} more",
            r.approvals_required,
            r.id,
            usize::try_from(r.approvals_required).unwrap_or(usize::MAX).saturating_sub(given)
        ),
        "void" => format!(
            "Request {} is void, nothing changed: {}",
            r.id,
            r.reason.as_deref().unwrap_or("it could no longer apply")
        ),
        "declined" if r.decided_by.as_deref() == Some(r.requested_by.as_str()) => {
            format!("Withdrew request {}", r.id)
        }
        "declined" => format!("Declined request {}", r.id),
        other => format!("Request {} is {other}", r.id),
    };
    let mut out = vec![summary, String::new()];
    out.extend(render::fields(&render::Render::fields(&r)));
    render::lines(out);
    Ok(())
}

/// The answer `202 Accepted` to a change of a binding: the pending request,
/// after a line saying that it waits for approval and by whom.
pub fn print_pending(ctx: &Ctx, ws: &str, v: Value) -> Result<(), CliError> {
    if ctx.json() {
        render::json(&v);
        return Ok(());
    }
    let r: RoleRequest = api::decode(v)?;
    let n = r.approvals_required;
    let approvals = if n == 1 { "1 approval".to_owned() } else { format!("{n} approvals") };
    let mut out = vec![format!(
        "Waits for approval: request {} needs {approvals} from managers of workspace {ws} other than you, or one admin's",
        r.id
    )];
    if r.needs_admin {
        out.push("The workspace has fewer other managers than that: the request waits for an admin.".into());
    }
    out.push(format!("Follow it with `canopy request show {ws} {}`.", r.id));
    out.push(String::new());
    out.extend(render::fields(&render::Render::fields(&r)));
    render::lines(out);
    Ok(())
}
