//! `canopy history list|show|verify`.

use std::path::{Path, PathBuf};

use canopy_api_types::{
    HistoryCheckpoint, HistoryCheckpoints, HistoryEvent, HistoryVerification, MAX_CHECKPOINTS, VerifyHistory,
};
use clap::Subcommand;
use time::OffsetDateTime;

use super::api::{self, CliError};
use super::{Ctx, format_rfc3339, render, rfc3339};

/// Events `history list` prints without `--limit` or `--all`.
const DEFAULT_EVENTS: u32 = 50;

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// A workspace's history, or with --installation the installation's
    /// (users, groups, project roles; admins), newest first.
    List {
        /// The workspace's identifier.
        #[arg(required_unless_present = "installation")]
        ws: Option<String>,
        /// The installation's history instead of a workspace's (admins).
        #[arg(long, conflicts_with = "ws")]
        installation: bool,
        /// Only events of this kind, e.g. binding_created.
        #[arg(long)]
        kind: Option<String>,
        /// Only events by this initiator (username, API key name or system job).
        #[arg(long)]
        initiator: Option<String>,
        /// Only events at or after this instant (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        since: Option<OffsetDateTime>,
        /// Only events before this instant (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<OffsetDateTime>,
        /// Print at most this many events (default 50).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "all")]
        limit: Option<u32>,
        /// Print every event, page after page.
        #[arg(long)]
        all: bool,
        /// Events asked for per request (1 to 500).
        #[arg(long, hide = true, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=500))]
        page_size: u32,
    },
    /// Show one event of a workspace's history with its details.
    Show {
        /// The workspace's identifier.
        ws: String,
        /// The event's id (see `canopy history list`).
        event: String,
    },
    /// Verify the hash chains of every workspace's history and the
    /// installation's, and that no chain is missing (admins); then print the
    /// signed checkpoints of every chain's head. Exit 1 when anything is wrong.
    Verify {
        /// Checkpoints kept from earlier (by --save-checkpoints, or the file
        /// `canopy serve --checkpoint-file` appends to): prove each still
        /// contained in its chain, signed by the installation's key.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        /// Save the checkpoints received to this file (only when the history
        /// verified), to prove later that no chain was cut short or deleted.
        /// Keep it outside Canopy.
        #[arg(long, value_name = "FILE")]
        save_checkpoints: Option<PathBuf>,
    },
}

pub async fn history(ctx: &Ctx, cmd: HistoryCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        HistoryCommand::List { ws, installation: _, kind, initiator, since, until, limit, all, page_size } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            q.extend(kind.map(|k| ("kind", k)));
            q.extend(initiator.map(|i| ("initiator", i)));
            if let Some(t) = since {
                q.push(("since", format_rfc3339(t)?));
            }
            if let Some(t) = until {
                q.push(("until", format_rfc3339(t)?));
            }
            let limit = if all { None } else { Some(limit.unwrap_or(DEFAULT_EVENTS)) };
            let path = match &ws {
                Some(ws) => vec!["workspaces", ws.as_str(), "history"],
                None => vec!["admin", "history"],
            };
            let (items, more) = client.list(&path, &q, limit, page_size).await?;
            ctx.print_list::<HistoryEvent>(items)?;
            if more {
                ctx.note("(older events left out: use --all or --limit)");
            }
            Ok(())
        }
        HistoryCommand::Show { ws, event } => {
            ctx.print_one::<HistoryEvent>(client.get(&["workspaces", &ws, "history", &event], &[]).await?)
        }
        HistoryCommand::Verify { checkpoints, save_checkpoints } => {
            verify(ctx, &client, checkpoints.as_deref(), save_checkpoints.as_deref()).await
        }
    }
}

/// `canopy history verify`: the verification, with the checkpoints given in
/// parts the server takes; then, when it held, the checkpoints of now.
async fn verify(ctx: &Ctx, client: &api::Api, given: Option<&Path>, save: Option<&Path>) -> Result<(), CliError> {
    let result = match given {
        None => api::decode::<HistoryVerification>(client.get(&["admin", "history", "verify"], &[]).await?)?,
        Some(path) => {
            let cps: Vec<HistoryCheckpoint> =
                crate::checkpoints_file::read(path).map_err(|e| CliError::Failed(format!("{e:#}")))?;
            let mut merged: Option<HistoryVerification> = None;
            for part in cps.chunks(MAX_CHECKPOINTS) {
                let body = VerifyHistory { checkpoints: part.to_vec() };
                let v: HistoryVerification = api::decode(client.post(&["admin", "history", "verify"], &body).await?)?;
                merged = Some(match merged {
                    None => v,
                    Some(m) => merge(m, v),
                });
            }
            merged.ok_or_else(|| CliError::Failed(format!("{} holds no checkpoints", path.display())))?
        }
    };
    let signed: Option<HistoryCheckpoints> =
        if result.ok { Some(api::decode(client.get(&["admin", "history", "checkpoints"], &[]).await?)?) } else { None };
    if let (Some(path), Some(signed)) = (save, &signed) {
        let text = serde_json::to_string_pretty(signed)
            .map_err(|e| CliError::Failed(format!("writing the checkpoints: {e}")))?;
        std::fs::write(path, format!("{text}\n"))
            .map_err(|e| CliError::Failed(format!("writing the checkpoints to {}: {e}", path.display())))?;
    }
    if ctx.json() {
        let mut v = serde_json::to_value(&result).map_err(|e| CliError::Failed(e.to_string()))?;
        if let (Some(signed), Some(obj)) = (&signed, v.as_object_mut()) {
            obj.insert("public_key".into(), signed.public_key.clone().into());
            obj.insert("key_id".into(), signed.key_id.clone().into());
            obj.insert(
                "checkpoints".into(),
                serde_json::to_value(&signed.checkpoints).map_err(|e| CliError::Failed(e.to_string()))?,
            );
        }
        render::json(&v);
    } else {
        let mut fields = vec![
            ("ok", render::yes_no(result.ok)),
            ("chains_checked", result.chains_checked.to_string()),
            ("events_checked", result.events_checked.to_string()),
        ];
        if given.is_some() {
            fields.push(("checkpoints_checked", result.checkpoints_checked.to_string()));
        }
        if let Some(b) = &result.first_broken {
            fields.push(("broken_chain", b.chain.clone()));
            fields.push(("broken_seq", b.seq.to_string()));
            fields.push(("broken_event", render::opt(b.event_id.as_deref())));
            fields.push(("reason", b.reason.clone()));
        }
        let mut out = render::fields(&fields);
        if result.problems.len() > 1 {
            out.push(String::new());
            out.push("problems:".into());
            let rows: Vec<Vec<String>> = result
                .problems
                .iter()
                .map(|p| {
                    vec![
                        p.chain.clone(),
                        p.seq.map_or_else(|| "-".into(), |s| s.to_string()),
                        p.code.clone(),
                        p.reason.clone(),
                    ]
                })
                .collect();
            out.extend(render::table(&["CHAIN", "SEQ", "CODE", "REASON"], &rows).into_iter().map(|l| format!("  {l}")));
        }
        if let Some(signed) = &signed {
            out.push(String::new());
            out.push(format!("checkpoints (key {}, public key {}):", signed.key_id, signed.public_key));
            let rows: Vec<Vec<String>> = signed
                .checkpoints
                .iter()
                .map(|c| vec![c.label.clone(), c.seq.to_string(), c.hash.clone(), render::time(c.at)])
                .collect();
            out.extend(render::table(&["CHAIN", "SEQ", "HASH", "AT"], &rows).into_iter().map(|l| format!("  {l}")));
            if let Some(path) = save {
                out.push(format!("saved to {}", path.display()));
            }
        }
        render::lines(out);
    }
    match result.problems.first() {
        None if result.ok => Ok(()),
        Some(p) => {
            let at = p.seq.map(|s| format!(" at seq {s}")).unwrap_or_default();
            let more = match result.problems.len() {
                1 => String::new(),
                n => format!(" (and {} more problem(s))", n - 1),
            };
            Err(CliError::Failed(format!("the history is broken: chain {}{at}: {}{more}", p.chain, p.reason)))
        }
        None => Err(CliError::Failed("the history is broken".into())),
    }
}

/// Two answers for parts of the checkpoints: the chains once, every checkpoint problem.
fn merge(mut a: HistoryVerification, b: HistoryVerification) -> HistoryVerification {
    a.ok &= b.ok;
    a.checkpoints_checked += b.checkpoints_checked;
    for p in b.problems {
        let dup = !p.code.starts_with("checkpoint_")
            && a.problems.iter().any(|q| q.code == p.code && q.chain_id == p.chain_id && q.seq == p.seq);
        if !dup {
            a.problems.push(p);
        }
    }
    if a.first_broken.is_none() {
        a.first_broken = b.first_broken;
    }
    a
}
