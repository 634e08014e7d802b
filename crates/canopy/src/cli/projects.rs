//! `canopy project ...`, `canopy binding ...`, `canopy role ...`.

use canopy_api_types::{
    Binding, CreateBinding, CreateProject, CreateProjectRole, ExpiringAccess, Project, ProjectDetails, ProjectRole,
    UpdateBinding, UpdateProject, UpdateProjectRole,
};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;

use super::api::{self, CliError};
use super::{Ctx, ListOpts, render, requests, rfc3339};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// List the projects of a workspace.
    List {
        /// The workspace's identifier.
        ws: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a project with its bindings and who effectively holds which roles.
    Show {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
    },
    /// Create a project (managers).
    Create {
        /// The workspace's identifier.
        ws: String,
        /// Identifier: lowercase letters, digits and dashes, 1 to 32 characters.
        project: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A tag, KEY=VALUE (repeatable); VALUE is JSON when it parses as
        /// JSON (`42`, `true`, `["a","b"]`), else text.
        #[arg(long = "tag", value_parser = tag_arg)]
        tags: Vec<(String, serde_json::Value)>,
    },
    /// Set or remove a project's tags (managers; admin-only tags: admins).
    Tag {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        /// A tag to set, KEY=VALUE (repeatable), as for `project create`.
        #[arg(long = "tag", value_parser = tag_arg)]
        tags: Vec<(String, serde_json::Value)>,
        /// A tag to remove (repeatable).
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Set a project's payment method and substitute (managers); `none` removes one.
    Payment {
        ws: String,
        project: String,
        /// A payment method id (see `canopy payment-method list`), or `none`.
        #[arg(long)]
        method: Option<String>,
        /// The substitute's id, or `none`.
        #[arg(long)]
        substitute: Option<String>,
    },
    /// Change a project's display name (managers).
    Rename {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        /// The new display name.
        #[arg(long)]
        name: String,
    },
    /// Delete a project (managers).
    /// Delete a project (managers). Without tenants it goes at once; with
    /// tenants its deletion waits for `canopy project confirm-deletion`.
    Delete {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
    },
    /// Show where a project's deletion (or its tenants') stands.
    Deletion { ws: String, project: String },
    /// Confirm a requested deletion by typing the project's identifier (managers).
    ConfirmDeletion {
        ws: String,
        project: String,
        /// The project's identifier again, to confirm.
        #[arg(long)]
        identifier: String,
    },
}

pub async fn project(ctx: &Ctx, cmd: ProjectCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        ProjectCommand::List { ws, list } => {
            let (items, _) = client.list(&["workspaces", &ws, "projects"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<Project>(items)
        }
        ProjectCommand::Show { ws, project } => {
            let v = client.get(&["workspaces", &ws, "projects", &project], &[]).await?;
            if ctx.json() {
                render::json(&v);
                return Ok(());
            }
            let d: ProjectDetails = api::decode(v)?;
            let mut out = render::fields(&render::Render::fields(&d.project));
            out.extend(render::section("Bindings", &d.bindings));
            out.extend(render::section("Effective access", &d.effective_access));
            render::lines(out);
            Ok(())
        }
        ProjectCommand::Create { ws, project, name, tags } => {
            let body = CreateProject {
                identifier: project,
                display_name: name,
                tags: tags.into_iter().collect(),
                payment_method: None,
                substitute_payment_method: None,
            };
            let created = client.post(&["workspaces", &ws, "projects"], &body).await?;
            ctx.print_one::<Project>(created)
        }
        ProjectCommand::Tag { ws, project, tags, remove } => {
            let mut given: serde_json::Map<String, serde_json::Value> = tags.into_iter().collect();
            given.extend(remove.into_iter().map(|k| (k, serde_json::Value::Null)));
            let body = UpdateProject {
                display_name: None,
                tags: Some(given),
                payment_method: None,
                substitute_payment_method: None,
            };
            let changed = client.patch(&["workspaces", &ws, "projects", &project], &body).await?;
            ctx.print_one::<Project>(changed)
        }
        ProjectCommand::Payment { ws, project, method, substitute } => {
            let id = |flag: &str, v: Option<String>| -> Result<Option<Option<uuid::Uuid>>, CliError> {
                match v.as_deref() {
                    None => Ok(None),
                    Some("none") => Ok(Some(None)),
                    Some(s) => uuid::Uuid::parse_str(s)
                        .map(|u| Some(Some(u)))
                        .map_err(|_| CliError::Usage(format!("--{flag} must be a payment method id or none"))),
                }
            };
            let body = UpdateProject {
                display_name: None,
                tags: None,
                payment_method: id("method", method)?,
                substitute_payment_method: id("substitute", substitute)?,
            };
            ctx.print_one::<Project>(client.patch(&["workspaces", &ws, "projects", &project], &body).await?)
        }
        ProjectCommand::Rename { ws, project, name } => {
            let changed = client
                .patch(
                    &["workspaces", &ws, "projects", &project],
                    &UpdateProject {
                        display_name: Some(name),
                        tags: None,
                        payment_method: None,
                        substitute_payment_method: None,
                    },
                )
                .await?;
            ctx.print_one::<Project>(changed)
        }
        ProjectCommand::Delete { ws, project } => {
            let answer = client.delete_with_answer(&["workspaces", &ws, "projects", &project]).await?;
            if answer.is_null() {
                ctx.done(format!("Deleted project {project} of workspace {ws}"));
                return Ok(());
            }
            ctx.note(&format!(
                "The project has tenants: confirm with `canopy project confirm-deletion {ws} {project} --identifier {project}`"
            ));
            super::tenants::print_deletion(ctx, answer)
        }
        ProjectCommand::Deletion { ws, project } => super::tenants::print_deletion(
            ctx,
            client.get(&["workspaces", &ws, "projects", &project, "deletion"], &[]).await?,
        ),
        ProjectCommand::ConfirmDeletion { ws, project, identifier } => {
            let body = canopy_api_types::ConfirmDeletion { identifier };
            let path = ["workspaces", ws.as_str(), "projects", project.as_str(), "deletion", "confirm"];
            super::tenants::print_deletion(ctx, client.post(&path, &body).await?)
        }
    }
}

/// Exactly one subject to bind.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BindingTarget {
    /// A user, by username.
    #[arg(long)]
    user: Option<String>,
    /// A group, by identifier.
    #[arg(long)]
    group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// List a project's role bindings.
    List {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Expired (red) and soon-expiring (yellow, within 7 days) bindings of a
    /// workspace, or of every workspace without one (admins); extend one with
    /// `canopy binding update WS PROJECT ID --expires-at ...`.
    Expired {
        /// The workspace's identifier (default: every workspace; admins).
        ws: Option<String>,
        /// Only `expired` or only `soon`.
        #[arg(long, value_parser = ["expired", "soon"])]
        state: Option<String>,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Give a user or a group a project role, optionally until a date.
    /// Where the workspace needs four-eye approval, this makes a pending
    /// request instead (see `canopy request`) and --justification is required.
    Add {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        #[command(flatten)]
        target: BindingTarget,
        /// A project role identifier, e.g. project_user (see `canopy role list`).
        #[arg(long)]
        role: String,
        /// When the binding ends (RFC 3339, e.g. 2027-01-31T18:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        expires_at: Option<OffsetDateTime>,
        /// Why the access is needed (required where four-eye approval is on).
        #[arg(long)]
        justification: Option<String>,
    },
    /// Change a binding's role or expiry; a pending request where the
    /// workspace needs four-eye approval.
    Update {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        /// The binding's id (see `canopy binding list`).
        id: String,
        /// A new project role.
        #[arg(long)]
        role: Option<String>,
        /// A new end (RFC 3339).
        #[arg(long, value_parser = rfc3339, conflicts_with = "no_expiry")]
        expires_at: Option<OffsetDateTime>,
        /// Remove the end: the binding holds until removed.
        #[arg(long)]
        no_expiry: bool,
        /// Why (required where four-eye approval is on).
        #[arg(long)]
        justification: Option<String>,
    },
    /// Remove a binding: its role ends now, or, where the workspace needs
    /// four-eye approval, once a pending request is approved.
    Remove {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        /// The binding's id (see `canopy binding list`).
        id: String,
        /// Why (required where four-eye approval is on).
        #[arg(long)]
        justification: Option<String>,
    },
}

/// The answer to a change of a binding: `202 Accepted` is a pending
/// four-eye request; anything else is the change done, printed by `done`.
fn binding_outcome(
    ctx: &Ctx,
    ws: &str,
    (status, v): (u16, Value),
    done: impl FnOnce(Value) -> Result<(), CliError>,
) -> Result<(), CliError> {
    if status == 202 { requests::print_pending(ctx, ws, v) } else { done(v) }
}

pub async fn binding(ctx: &Ctx, cmd: BindingCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        BindingCommand::List { ws, project, list } => {
            let (items, _) = client
                .list(&["workspaces", &ws, "projects", &project, "bindings"], &[], list.limit, list.page_size)
                .await?;
            ctx.print_list::<Binding>(items)
        }
        BindingCommand::Expired { ws, state, list } => {
            let path = match &ws {
                Some(ws) => vec!["workspaces", ws.as_str(), "expired-access"],
                None => vec!["expired-access"],
            };
            let q: Vec<(&str, String)> = state.map(|s| ("state", s)).into_iter().collect();
            let (items, _) = client.list(&path, &q, list.limit, list.page_size).await?;
            ctx.print_list::<ExpiringAccess>(items)
        }
        BindingCommand::Add { ws, project, target, role, expires_at, justification } => {
            let body = CreateBinding { user: target.user, group: target.group, role, expires_at, justification };
            let path = ["workspaces", ws.as_str(), "projects", project.as_str(), "bindings"];
            let answer = client.call_status(Method::POST, &path, &[], Some(api::to_json(&body)?)).await?;
            binding_outcome(ctx, &ws, answer, |v| ctx.print_one::<Binding>(v))
        }
        BindingCommand::Update { ws, project, id, role, expires_at, no_expiry, justification } => {
            let expires_at = if no_expiry { Some(None) } else { expires_at.map(Some) };
            if role.is_none() && expires_at.is_none() {
                return Err(CliError::Usage("nothing to change: give --role, --expires-at or --no-expiry".into()));
            }
            let body = UpdateBinding { role, expires_at, justification };
            let path = ["workspaces", ws.as_str(), "projects", project.as_str(), "bindings", id.as_str()];
            let answer = client.call_status(Method::PATCH, &path, &[], Some(api::to_json(&body)?)).await?;
            binding_outcome(ctx, &ws, answer, |v| ctx.print_one::<Binding>(v))
        }
        BindingCommand::Remove { ws, project, id, justification } => {
            let path = ["workspaces", ws.as_str(), "projects", project.as_str(), "bindings", id.as_str()];
            let q: Vec<(&str, String)> = justification.map(|j| ("justification", j)).into_iter().collect();
            let answer = client.call_status(Method::DELETE, &path, &q, None).await?;
            binding_outcome(ctx, &ws, answer, |_| {
                ctx.done(format!("Removed binding {id} of project {project}"));
                Ok(())
            })
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List the project roles.
    List,
    /// Create a project role (admins).
    Create {
        /// Identifier, e.g. project_auditor.
        role: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// What the role allows.
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
    },
    /// Change a project role's display name or description (admins).
    Update {
        /// The project role's identifier.
        role: String,
        /// A new display name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a project role no binding uses (admins).
    Delete {
        /// The project role's identifier.
        role: String,
    },
}

pub async fn role(ctx: &Ctx, cmd: RoleCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        RoleCommand::List => {
            let (items, _) = client.list(&["project-roles"], &[], None, 500).await?;
            ctx.print_list::<ProjectRole>(items)
        }
        RoleCommand::Create { role, name, description } => {
            let body = CreateProjectRole { identifier: role, display_name: name, description };
            ctx.print_one::<ProjectRole>(client.post(&["project-roles"], &body).await?)
        }
        RoleCommand::Update { role, name, description } => {
            if name.is_none() && description.is_none() {
                return Err(CliError::Usage("nothing to change: give --name or --description".into()));
            }
            let body = UpdateProjectRole { display_name: name, description };
            ctx.print_one::<ProjectRole>(client.patch(&["project-roles", &role], &body).await?)
        }
        RoleCommand::Delete { role } => {
            client.delete(&["project-roles", &role]).await?;
            ctx.done(format!("Deleted project role {role}"));
            Ok(())
        }
    }
}

/// `KEY=VALUE`, VALUE as JSON when it parses, else as text.
fn tag_arg(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}
