//! `canopy history list|show|verify`.

use canopy_api_types::{HistoryEvent, HistoryVerification};
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
    /// installation's (admins); exit 1 when a link is broken.
    Verify,
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
        HistoryCommand::Verify => {
            let v = client.get(&["admin", "history", "verify"], &[]).await?;
            let result: HistoryVerification = api::decode(v.clone())?;
            if ctx.json() {
                render::json(&v);
            } else {
                let mut fields = vec![
                    ("ok", render::yes_no(result.ok)),
                    ("chains_checked", result.chains_checked.to_string()),
                    ("events_checked", result.events_checked.to_string()),
                ];
                if let Some(b) = &result.first_broken {
                    fields.push(("broken_chain", b.chain.clone()));
                    fields.push(("broken_seq", b.seq.to_string()));
                    fields.push(("broken_event", render::opt(b.event_id.as_deref())));
                    fields.push(("reason", b.reason.clone()));
                }
                render::lines(render::fields(&fields));
            }
            match result.first_broken {
                None if result.ok => Ok(()),
                Some(b) => Err(CliError::Failed(format!(
                    "the history is broken: chain {} at seq {}: {}",
                    b.chain, b.seq, b.reason
                ))),
                None => Err(CliError::Failed("the history is broken".into())),
            }
        }
    }
}
