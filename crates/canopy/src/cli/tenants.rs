//! `canopy tenant ...`: a project's tenants, their replication status, and
//! replicating many of them with progress (IF4).

use std::time::{Duration, Instant};

use canopy_api_types::{
    CreateTenant, ManualDeletionReceipt, PendingDeletion, Project, ProjectDeletion, Tenant, TenantDeletionState,
    TenantPlan,
};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::api::{self, Api, CliError};
use super::render::{self, Render};
use super::{Ctx, ListOpts};

impl Render for Tenant {
    const HEADERS: &'static [&'static str] =
        &["PROJECT", "PLATFORM", "STATUS", "EXTERNAL ID", "LAST REPLICATED", "ERROR"];
    fn row(&self) -> Vec<String> {
        vec![
            self.project.clone(),
            self.platform.clone(),
            self.status.clone(),
            render::opt(self.external_id.as_deref()),
            render::opt_time(self.last_replicated_at),
            render::opt(self.last_error.as_deref()),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("workspace", self.workspace.clone()),
            ("project", self.project.clone()),
            ("platform", format!("{} ({})", self.platform, self.platform_type)),
            ("landing_zone", render::opt(self.landing_zone.as_deref())),
            ("name", self.name.clone()),
            ("external_id", render::opt(self.external_id.as_deref())),
            ("status", self.status.clone()),
            ("last_error", render::opt(self.last_error.as_deref())),
            ("next_attempt_at", render::opt_time(self.next_attempt_at)),
            ("last_replicated_at", render::opt_time(self.last_replicated_at)),
            ("created_at", render::time(self.created_at)),
        ]
    }
}

fn assignments(list: &[canopy_api_types::PlannedAssignment]) -> String {
    render::list(&list.iter().map(|a| format!("{}:{}", a.account, a.platform_role)).collect::<Vec<_>>())
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List a project's tenants with their replication status.
    List {
        /// The workspace's identifier.
        ws: String,
        /// The project's identifier.
        project: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a tenant: status, the platform's id and its last error.
    Show {
        ws: String,
        project: String,
        /// The platform's identifier.
        platform: String,
    },
    /// Add a tenant on a platform to a project (managers); replication creates it.
    Add {
        ws: String,
        project: String,
        /// The platform's identifier.
        platform: String,
        /// The landing zone (required where the platform says so).
        #[arg(long)]
        landing_zone: Option<String>,
    },
    /// Delete a tenant on its own (managers); confirm with `canopy project confirm-deletion`.
    Delete { ws: String, project: String, platform: String },
    /// Show what replication would change in a tenant now, without changing it (managers).
    Plan { ws: String, project: String, platform: String },
    /// Replicate tenants again now (managers): one project's, or every
    /// project's of the workspace; with --wait, show progress until each is done.
    Replicate {
        ws: String,
        /// Only this project's tenants (default: every project of the workspace).
        project: Option<String>,
        /// Only the tenant on this platform.
        #[arg(long)]
        platform: Option<String>,
        /// Wait until every tenant succeeded or failed, showing progress; exit 1 if any failed.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

pub async fn tenant(ctx: &Ctx, cmd: TenantCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        TenantCommand::List { ws, project, list } => {
            let path = ["workspaces", &ws, "projects", &project, "tenants"];
            let (items, _) = client.list(&path, &[], list.limit, list.page_size).await?;
            ctx.print_list::<Tenant>(items)
        }
        TenantCommand::Show { ws, project, platform } => ctx.print_one::<Tenant>(
            client.get(&["workspaces", &ws, "projects", &project, "tenants", &platform], &[]).await?,
        ),
        TenantCommand::Add { ws, project, platform, landing_zone } => {
            let body = CreateTenant { platform, landing_zone };
            ctx.print_one::<Tenant>(client.post(&["workspaces", &ws, "projects", &project, "tenants"], &body).await?)
        }
        TenantCommand::Delete { ws, project, platform } => {
            let answer =
                client.delete_with_answer(&["workspaces", &ws, "projects", &project, "tenants", &platform]).await?;
            ctx.note(&format!("Confirm with `canopy project confirm-deletion {ws} {project} --identifier {project}`"));
            print_deletion(ctx, answer)
        }
        TenantCommand::Plan { ws, project, platform } => {
            let v = client.get(&["workspaces", &ws, "projects", &project, "tenants", &platform, "plan"], &[]).await?;
            if ctx.json() {
                render::json(&v);
                return Ok(());
            }
            let p: TenantPlan = api::decode(v)?;
            render::lines(render::fields(&[
                ("platform", p.platform.clone()),
                ("grant", assignments(&p.grant)),
                ("revoke", assignments(&p.revoke)),
                ("drift_missing", assignments(&p.drift_missing)),
                ("drift_unexpected", assignments(&p.drift_unexpected)),
                ("drift_policy", p.drift_policy.clone()),
                ("desired", assignments(&p.desired)),
                ("actual", assignments(&p.actual)),
            ]));
            Ok(())
        }
        TenantCommand::Replicate { ws, project, platform, wait, timeout } => {
            replicate(ctx, &client, &ws, project, platform, wait, Duration::from_secs(timeout)).await
        }
    }
}

/// The tenants to replicate: (project, platform).
async fn targets(
    client: &Api,
    ws: &str,
    project: Option<String>,
    platform: Option<&str>,
) -> Result<Vec<(String, String)>, CliError> {
    let projects = match project {
        Some(p) => vec![p],
        None => {
            let (items, _) = client.list(&["workspaces", ws, "projects"], &[], None, 500).await?;
            items.into_iter().map(api::decode::<Project>).map(|p| p.map(|p| p.identifier)).collect::<Result<_, _>>()?
        }
    };
    let mut out = Vec::new();
    for p in projects {
        let (items, _) = client.list(&["workspaces", ws, "projects", &p, "tenants"], &[], None, 500).await?;
        for t in items.into_iter().map(api::decode::<Tenant>) {
            let t = t?;
            if platform.is_none_or(|pf| pf == t.platform) {
                out.push((p.clone(), t.platform));
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::Failed("no tenant matches: nothing to replicate".into()));
    }
    Ok(out)
}

async fn replicate(
    ctx: &Ctx,
    client: &Api,
    ws: &str,
    project: Option<String>,
    platform: Option<String>,
    wait: bool,
    timeout: Duration,
) -> Result<(), CliError> {
    let targets = targets(client, ws, project, platform.as_deref()).await?;
    let mut tenants = Vec::with_capacity(targets.len());
    for (p, pf) in &targets {
        let v =
            client.post(&["workspaces", ws, "projects", p, "tenants", pf, "replicate"], &serde_json::json!({})).await?;
        tenants.push(api::decode::<Tenant>(v)?);
    }
    if !wait {
        ctx.done(format!("Asked for replication of {} tenant(s)", tenants.len()));
        return if ctx.json() { ctx_json_list(&tenants) } else { Ok(()) };
    }
    let total = tenants.len() as u64;
    // a bar on a terminal; on a pipe or file, one line per finished tenant
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !ctx.json();
    let bar = ProgressBar::new(total);
    if terminal {
        bar.set_style(
            ProgressStyle::with_template("{spinner} replicating [{bar:30}] {pos}/{len} tenants {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = Instant::now();
    let mut done: Vec<Option<Tenant>> = vec![None; tenants.len()];
    let mut finished = 0u64;
    while finished < total {
        if started.elapsed() > timeout {
            bar.abandon();
            return Err(CliError::Failed(format!(
                "gave up waiting after {}s: {finished} of {total} tenants finished",
                timeout.as_secs()
            )));
        }
        for (i, (p, pf)) in targets.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let t: Tenant = api::decode(client.get(&["workspaces", ws, "projects", p, "tenants", pf], &[]).await?)?;
            if matches!(t.status.as_str(), "succeeded" | "failed") {
                finished += 1;
                let line = format!("[{finished}/{total}] {p} on {pf}: {}", t.status);
                if terminal {
                    bar.set_message(format!("({p} on {pf}: {})", t.status));
                    bar.inc(1);
                } else if !ctx.json() {
                    eprintln!("{line}");
                }
                done[i] = Some(t);
            }
        }
        if finished < total {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    bar.finish_and_clear();
    let results: Vec<Tenant> = done.into_iter().flatten().collect();
    if ctx.json() {
        ctx_json_list(&results)?;
    } else {
        render::lines(render::table(Tenant::HEADERS, &results.iter().map(Render::row).collect::<Vec<_>>()));
    }
    let failed = results.iter().filter(|t| t.status == "failed").count();
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} of {total} tenant(s) failed to replicate")));
    }
    Ok(())
}

fn ctx_json_list(tenants: &[Tenant]) -> Result<(), CliError> {
    let v = serde_json::to_value(tenants).map_err(|e| CliError::Failed(e.to_string()))?;
    render::json(&v);
    Ok(())
}

impl Render for TenantDeletionState {
    const HEADERS: &'static [&'static str] = &["PLATFORM", "MODE", "STATE", "RESOURCES", "ID"];
    fn row(&self) -> Vec<String> {
        vec![
            self.platform.clone(),
            self.mode.clone(),
            render::opt(self.state.as_deref()),
            render::list(&self.resources),
            self.id.to_string(),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("platform", self.platform.clone()), ("state", render::opt(self.state.as_deref()))]
    }
}

impl Render for PendingDeletion {
    const HEADERS: &'static [&'static str] = &["ID", "WORKSPACE", "PROJECT", "EXTERNAL ID", "REQUESTED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.workspace.clone(),
            self.project.clone(),
            render::opt(self.external_id.as_deref()),
            render::opt_time(self.requested_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("id", self.id.to_string()), ("project", self.project.clone())]
    }
}

/// Print a deletion's state: JSON as it came, or its fields and a table of tenants.
pub fn print_deletion(ctx: &Ctx, v: serde_json::Value) -> Result<(), CliError> {
    if ctx.json() {
        render::json(&v);
        return Ok(());
    }
    let d: ProjectDeletion = api::decode(v)?;
    let mut lines = render::fields(&[
        ("workspace", d.workspace.clone()),
        ("project", d.project.clone()),
        ("project_deletion", render::yes_no(d.project_deletion)),
        ("state", d.state.clone()),
    ]);
    lines.extend(render::section("Tenants", &d.tenants));
    render::lines(lines);
    Ok(())
}

/// `canopy platform deletions ...`: tenant deletions waiting for a platform engineer (DL3).
#[derive(Debug, Subcommand)]
pub enum PlatformDeletionCommand {
    /// List the tenant deletions of a platform waiting for a platform engineer.
    List {
        /// The platform's identifier.
        platform: String,
    },
    /// The tenant was deleted by hand: Canopy forgets it (the project goes with its last tenant).
    Confirm { platform: String, id: String },
    /// Decline the deletion: the tenant stays.
    Decline { platform: String, id: String },
}

pub async fn platform_deletion(ctx: &Ctx, cmd: PlatformDeletionCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        PlatformDeletionCommand::List { platform } => {
            let (items, _) = client.list(&["platforms", &platform, "deletions"], &[], None, 500).await?;
            ctx.print_list::<PendingDeletion>(items)
        }
        PlatformDeletionCommand::Confirm { platform, id } => {
            let answer =
                client.post(&["platforms", &platform, "deletions", &id, "confirm"], &serde_json::json!({})).await?;
            if ctx.json() {
                render::json(&answer);
                return Ok(());
            }
            let receipt: ManualDeletionReceipt = api::decode(answer)?;
            let mut out = vec![format!("Confirmed the deletion of tenant {id} on {platform}")];
            for r in &receipt.revoked {
                out.push(format!(
                    "  revoked {} {} (confirmed {})",
                    r.account,
                    r.platform_role,
                    render::time(r.confirmed_at)
                ));
            }
            render::lines(out);
            if let Some(e) = &receipt.platform_error {
                // the tenant is forgotten either way; say that access there may remain
                eprintln!("warning: Canopy could not revoke access in the tenant: {e}");
            }
            Ok(())
        }
        PlatformDeletionCommand::Decline { platform, id } => {
            client.post(&["platforms", &platform, "deletions", &id, "decline"], &serde_json::json!({})).await?;
            ctx.done(format!("Declined the deletion of tenant {id} on {platform}: it stays"));
            Ok(())
        }
    }
}
