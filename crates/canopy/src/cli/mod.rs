//! The command-line client of the REST API (IF3).
//!
//! Commands are nouns then verbs (`canopy workspace create acme --name Acme`),
//! identifiers are positional, everything else is a flag. Each command is one
//! or a few REST calls through [`api::Api`]; `--output json` prints the
//! server's JSON as it came (lists: the items of every page, merged), the
//! default `--output table` prints aligned columns or `key: value` lines.
//!
//! The server and token come from `--server`/`CANOPY_SERVER` and
//! `--token`/`CANOPY_TOKEN`, else from the profile file that `canopy login`
//! writes (see [`api::Profile::path`]). A profile's token is only sent to the
//! server it was issued by.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

mod api;
mod emergency;
mod history;
mod payments;
mod people;
mod platforms;
mod projects;
mod render;
mod requests;
mod session;
mod settings;
mod tenants;
mod workspaces;

use api::{Api, CliError, Profile};
use render::Render;

/// Options of every client command.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// URL of the Canopy server (default: the profile's, set by `canopy login`).
    #[arg(long, global = true, help_heading = "Global options", env = "CANOPY_SERVER")]
    pub server: Option<String>,
    /// Bearer token or API key (default: the profile's).
    #[arg(long, global = true, help_heading = "Global options", env = "CANOPY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Profile file holding the server and token.
    #[arg(long, global = true, help_heading = "Global options", env = "CANOPY_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, help_heading = "Global options", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Shown after the help of every client command.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure: server unreachable, server error, bad profile, broken history
  2  usage error
  3  not signed in, or the token was refused (401)
  4  not allowed (403)
  5  not found (404)
  6  conflict (409)
  7  invalid input (400, 422)
  8  too many requests or the server is busy (429, 503)
Errors go to standard error as `error: DETAIL`, then one `  FIELD: MESSAGE` line per invalid field.";

// The client commands (`canopy NOUN VERB ...`), flattened into `canopy`'s
// commands next to `serve` and `admin`.
//
// Exit codes, also printed after each command's `--help` (`EXIT_CODES`):
// 0 success; 1 other failure (server unreachable, 5xx, bad profile, broken
// history); 2 usage; 3 not signed in or 401; 4 forbidden (403); 5 not found
// (404); 6 conflict (409); 7 invalid input (400, 422); 8 too many requests or busy (429, 503).
//
// (A plain comment on purpose: clap turns a doc comment here into the about
// text of the top-level `canopy` command this enum is flattened into.)
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Sign in with a local account and keep the token in the profile.
    #[command(after_help = EXIT_CODES)]
    Login(session::LoginArgs),
    /// Sign out: end the session on the server and forget the token kept in the profile.
    #[command(after_help = EXIT_CODES)]
    Logout(session::LogoutArgs),
    /// Show who the current token belongs to, their roles and access.
    #[command(after_help = EXIT_CODES)]
    Whoami,
    /// Workspaces: list, show, create, rename, delete, four-eye.
    #[command(subcommand, after_help = EXIT_CODES)]
    Workspace(workspaces::WorkspaceCommand),
    /// Workspace members (current access): list, add, set-role, remove, search.
    #[command(subcommand, after_help = EXIT_CODES)]
    Member(workspaces::MemberCommand),
    /// Projects of a workspace: list, show, create, rename, delete.
    #[command(subcommand, after_help = EXIT_CODES)]
    Project(projects::ProjectCommand),
    /// Role bindings of a project: who holds which project role, until when.
    #[command(subcommand, after_help = EXIT_CODES)]
    Binding(projects::BindingCommand),
    /// Four-eye requests: changes to bindings waiting for approval; list, show, approve, decline.
    #[command(subcommand, after_help = EXIT_CODES)]
    Request(requests::RequestCommand),
    /// The installation's settings: four-eye approval, the longest access, substitute payment methods (admins).
    #[command(subcommand, after_help = EXIT_CODES)]
    Settings(settings::SettingsCommand),
    /// Project roles of the installation (admins change them).
    #[command(subcommand, after_help = EXIT_CODES)]
    Role(projects::RoleCommand),
    /// Local user accounts (admins).
    #[command(subcommand, after_help = EXIT_CODES)]
    User(people::UserCommand),
    /// Groups of users (admins change them).
    #[command(subcommand, after_help = EXIT_CODES)]
    Group(people::GroupCommand),
    /// API keys for automation, scoped to a workspace or the installation.
    #[command(subcommand, after_help = EXIT_CODES)]
    ApiKey(people::ApiKeyCommand),
    /// Platforms tenants are created on: settings, secrets, role mapping (admins and platform engineers change them).
    #[command(subcommand, after_help = EXIT_CODES)]
    Platform(platforms::PlatformCommand),
    /// Landing zones of a platform: the settings new tenants get.
    #[command(subcommand, after_help = EXIT_CODES)]
    LandingZone(platforms::LandingZoneCommand),
    /// Tenant deletions waiting for a platform engineer: list, confirm, decline.
    #[command(subcommand, after_help = EXIT_CODES)]
    TenantDeletion(tenants::PlatformDeletionCommand),
    /// Tenants of a project: add, show, plan, and replicate with progress.
    #[command(subcommand, after_help = EXIT_CODES)]
    Tenant(tenants::TenantCommand),
    /// A workspace's history, and verifying the history's hash chains.
    #[command(subcommand, after_help = EXIT_CODES)]
    History(history::HistoryCommand),
    /// Payment methods of a workspace, and the forecast of those running out.
    #[command(subcommand, after_help = EXIT_CODES)]
    PaymentMethod(payments::PaymentMethodCommand),
    /// Emergency access: grant a role at once until an expiration, or revoke everything a person holds.
    #[command(subcommand, after_help = EXIT_CODES)]
    Emergency(emergency::EmergencyCommand),
}

/// Run a client command; errors go to standard error and pick the exit code.
pub async fn run(global: GlobalOpts, cmd: ClientCommand) -> ExitCode {
    let ctx = Ctx::new(global);
    let result = match cmd {
        ClientCommand::Login(a) => session::login(&ctx, a).await,
        ClientCommand::Logout(a) => session::logout(&ctx, a).await,
        ClientCommand::Whoami => session::whoami(&ctx).await,
        ClientCommand::Workspace(c) => workspaces::workspace(&ctx, c).await,
        ClientCommand::Member(c) => workspaces::member(&ctx, c).await,
        ClientCommand::Project(c) => projects::project(&ctx, c).await,
        ClientCommand::Binding(c) => projects::binding(&ctx, c).await,
        ClientCommand::Request(c) => requests::request(&ctx, c).await,
        ClientCommand::Settings(c) => settings::settings(&ctx, c).await,
        ClientCommand::Role(c) => projects::role(&ctx, c).await,
        ClientCommand::User(c) => people::user(&ctx, c).await,
        ClientCommand::Group(c) => people::group(&ctx, c).await,
        ClientCommand::ApiKey(c) => people::api_key(&ctx, c).await,
        ClientCommand::Platform(c) => platforms::platform(&ctx, c).await,
        ClientCommand::LandingZone(c) => platforms::landing_zone(&ctx, c).await,
        ClientCommand::Tenant(c) => tenants::tenant(&ctx, c).await,
        ClientCommand::TenantDeletion(c) => tenants::platform_deletion(&ctx, c).await,
        ClientCommand::History(c) => history::history(&ctx, c).await,
        ClientCommand::Emergency(c) => emergency::emergency(&ctx, c).await,
        ClientCommand::PaymentMethod(c) => payments::payment_method(&ctx, c).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(e.exit_code())
        }
    }
}

/// A flag's `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        self == Self::On
    }
}

/// `--limit` and the page size of list commands.
#[derive(Debug, Args)]
pub struct ListOpts {
    /// Print at most this many items (default: all of them, page after page).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Items asked for per request (1 to 500).
    #[arg(long, hide = true, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub page_size: u32,
}

/// What every command works with: the output format and how to reach the server.
pub struct Ctx {
    output: Output,
    server: Option<String>,
    token: Option<String>,
    profile: Option<PathBuf>,
}

impl Ctx {
    fn new(g: GlobalOpts) -> Self {
        let given = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Self {
            output: g.output,
            server: given(g.server),
            token: given(g.token),
            profile: g.profile.filter(|p| !p.as_os_str().is_empty()),
        }
    }

    fn json(&self) -> bool {
        self.output == Output::Json
    }

    fn profile_path(&self) -> Result<PathBuf, CliError> {
        Profile::path(self.profile.as_deref())
    }

    /// A client with the server and token from the flags, the environment or the profile.
    fn api(&self) -> Result<Api, CliError> {
        let not_signed_in = || CliError::NotSignedIn(api::NOT_SIGNED_IN.into());
        if let Some(s) = &self.server {
            api::parse_server(s)?;
        }
        let (server, token) = match (&self.server, &self.token) {
            (Some(s), Some(t)) => (s.clone(), t.clone()),
            (server, token) => {
                let profile = Profile::load(&self.profile_path()?)?;
                let server = server.clone().or_else(|| profile.server.clone()).ok_or_else(not_signed_in)?;
                let token = match token {
                    Some(t) => t.clone(),
                    // The profile's token goes only to the server that issued it.
                    None => profile
                        .token
                        .filter(|_| same_server(profile.server.as_deref(), &server))
                        .ok_or_else(not_signed_in)?,
                };
                (server, token)
            }
        };
        Api::new(&server, Some(token))
    }

    /// Print a list: the items as a JSON array, or a table.
    fn print_list<T: Render>(&self, items: Vec<Value>) -> Result<(), CliError> {
        if self.json() {
            render::json(&Value::Array(items));
            return Ok(());
        }
        let rows = items.into_iter().map(|v| api::decode::<T>(v).map(|t| t.row())).collect::<Result<Vec<_>, _>>()?;
        render::lines(render::table(T::HEADERS, &rows));
        Ok(())
    }

    /// Print one object: its JSON, or `key: value` lines.
    fn print_one<T: Render>(&self, v: Value) -> Result<(), CliError> {
        if self.json() {
            render::json(&v);
            return Ok(());
        }
        let t: T = api::decode(v)?;
        render::lines(render::fields(&t.fields()));
        Ok(())
    }

    /// A success message (table output only: JSON output stays machine-readable).
    fn done(&self, message: impl Into<String>) {
        if !self.json() {
            render::lines([message.into()]);
        }
    }

    /// A note on standard error, in table output only.
    fn note(&self, message: &str) {
        if !self.json() {
            eprintln!("{message}");
        }
    }
}

fn same_server(profile: Option<&str>, server: &str) -> bool {
    match (profile.map(api::parse_server), api::parse_server(server)) {
        (Some(Ok(a)), Ok(b)) => api::server_text(&a) == api::server_text(&b),
        _ => false,
    }
}

/// A secret from the first line of standard input (`from_stdin`), else from
/// the environment variable `env`, else `None`.
async fn read_secret(from_stdin: bool, env: &str) -> Result<Option<String>, CliError> {
    if from_stdin {
        // tokio is built without `io-std`: read the line on a blocking thread.
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .map_err(|e| CliError::Failed(format!("cannot read standard input: {e}")))?
        .map_err(|e| CliError::Failed(format!("cannot read standard input: {e}")))?;
        let secret = line.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return Err(CliError::Usage("the password read from standard input is empty".into()));
        }
        return Ok(Some(secret.to_owned()));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.is_empty()))
}

/// Parse an RFC 3339 instant on the command line, as UTC.
fn rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|e| format!("not an RFC 3339 date and time like 2027-01-31T18:00:00Z: {e}"))
}

/// An instant for a query parameter, at full precision.
fn format_rfc3339(t: OffsetDateTime) -> Result<String, CliError> {
    t.format(&Rfc3339).map_err(|e| CliError::Usage(format!("cannot format {t}: {e}")))
}

/// `owner`, `manager`, `member` stand for `workspace_owner`, ...; anything
/// else goes to the server as given.
fn workspace_role(role: &str) -> String {
    match role {
        "owner" | "manager" | "member" => format!("workspace_{role}"),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_workspace_roles_expand() {
        assert_eq!(workspace_role("manager"), "workspace_manager");
        assert_eq!(workspace_role("workspace_owner"), "workspace_owner");
        assert_eq!(workspace_role("admin"), "admin");
    }

    #[test]
    fn a_profile_token_stays_with_its_server() {
        assert!(same_server(Some("http://127.0.0.1:8080/"), "http://127.0.0.1:8080"));
        assert!(!same_server(Some("http://127.0.0.1:8080"), "http://evil.example"));
        assert!(!same_server(None, "http://127.0.0.1:8080"));
    }
}
