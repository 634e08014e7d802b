//! The configuration file of `canopy serve` (TOML), layered under the
//! environment and the flags: flag > environment > file > default.
//!
//! clap parses flags and environment as always; [`resolve`] then asks it,
//! setting by setting, where each value came from (`ArgMatches::value_source`)
//! and takes the file's value only where clap fell back to a default or
//! found nothing. File values go through the very parsers the flags use (a
//! copy of the `serve` command without environment and defaults), so a
//! range, an address or a URL is checked the same way wherever it comes
//! from, and a bad one is refused naming the key and the file.
//!
//! The result is still one typed [`ServeArgs`], passed in: nothing here is
//! global.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::serve::{Secret, ServeArgs};

/// A configuration file larger than this is refused unread.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Settings that come from the environment only, and why, for the message
/// that refuses them in a file.
const ENVIRONMENT_ONLY: [(&str, &str); 4] = [
    ("admin_password", "CANOPY_ADMIN_PASSWORD, used once on an empty database"),
    ("secret_key", "CANOPY_SECRET_KEY, or the key file named by secret_key_file"),
    ("history_key", "CANOPY_HISTORY_KEY, or the key file named by history_key_file"),
    ("oidc_client_secret", "CANOPY_OIDC_CLIENT_SECRET, or the file named by oidc_client_secret_file"),
];

/// Arguments of `canopy serve` that are no settings.
const NOT_SETTINGS: [&str; 4] = ["config", "print_config", "help", "version"];

/// Where a setting's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    File,
    Default,
    Unset,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::File => "file",
            Source::Default => "default",
            Source::Unset => "not set",
        }
    }
}

/// The effective configuration and where each setting came from (by key).
#[derive(Debug)]
pub struct Resolved {
    pub args: ServeArgs,
    pub sources: BTreeMap<String, Source>,
}

/// `serve`'s arguments as a file can give them: no environment, no
/// defaults, so that what the file's values parse into is theirs alone.
fn file_command() -> Command {
    ServeArgs::augment_args(Command::new("canopy-serve-config-file"))
        .no_binary_name(true)
        .disable_help_flag(true)
        .mut_args(|a| a.env(None).default_value(None).required(false))
}

/// The key of a setting in the file: its flag without dashes
/// (`--session-minutes` is `session_minutes`); `--trusted-proxy`, which
/// repeats, is the list `trusted_proxies`.
fn key_of(long: &str) -> String {
    match long {
        "trusted-proxy" => "trusted_proxies".to_owned(),
        other => other.replace('-', "_"),
    }
}

/// One setting of `serve`: its clap id, flag and whether it takes a list.
struct Setting {
    id: String,
    long: String,
    many: bool,
}

/// Every setting by file key.
fn settings() -> BTreeMap<String, Setting> {
    let cmd = file_command();
    let mut out = BTreeMap::new();
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        let Some(long) = a.get_long() else { continue };
        if NOT_SETTINGS.contains(&id) {
            continue;
        }
        let many = matches!(a.get_action(), clap::ArgAction::Append);
        out.insert(key_of(long), Setting { id: id.to_owned(), long: long.to_owned(), many });
    }
    out
}

/// The file's value as the argument strings a flag would take.
fn as_flag_values(file: &Path, key: &str, value: &toml::Value, many: bool) -> anyhow::Result<Vec<String>> {
    let one = |v: &toml::Value| -> anyhow::Result<String> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => bail!("{}: `{key}` must be a string or a number", file.display()),
        })
    };
    match value {
        toml::Value::Array(items) if many => items.iter().map(one).collect(),
        toml::Value::Array(_) => bail!("{}: `{key}` takes one value, not a list", file.display()),
        _ if many => bail!("{}: `{key}` must be a list, e.g. {key} = [\"...\"]", file.display()),
        v => Ok(vec![one(v)?]),
    }
}

/// Read and check the configuration file: every key known, every value one
/// its flag would take. Answers the arguments the file gives, by key.
fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!("{}: a configuration file is at most {MAX_FILE_BYTES} bytes", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: not valid TOML: {}", path.display(), e.message().trim()))?;
    let settings = settings();
    let mut out = BTreeMap::new();
    for (key, value) in &table {
        if let Some((_, from)) = ENVIRONMENT_ONLY.iter().find(|(k, _)| k == key) {
            bail!("{}: `{key}` cannot be set in a file; it comes from {from}", path.display());
        }
        let Some(setting) = settings.get(key) else {
            bail!(
                "{}: unknown key `{key}` (known: {})",
                path.display(),
                settings.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let values = as_flag_values(path, key, value, setting.many)?;
        // the flag's own parser checks the value
        let mut argv: Vec<OsString> = Vec::new();
        for v in &values {
            argv.push(format!("--{}={v}", setting.long).into());
        }
        if let Err(e) = file_command().try_get_matches_from(argv) {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or("").trim_start_matches("error: ");
            bail!("{}: `{key}`: {why}", path.display());
        }
        out.insert(key.clone(), values);
    }
    Ok(out)
}

/// The effective configuration of `canopy serve`: `args` and `matches` as
/// clap parsed flags and environment, with the configuration file (`--config`
/// or `CANOPY_CONFIG`) under them.
pub fn resolve(mut args: ServeArgs, matches: &ArgMatches) -> anyhow::Result<Resolved> {
    let settings = settings();
    let from_file = match &args.config {
        Some(path) => read_file(path)?,
        None => BTreeMap::new(),
    };
    let mut sources = BTreeMap::new();
    let mut argv: Vec<OsString> = Vec::new();
    for (key, setting) in &settings {
        let given = match matches.value_source(&setting.id) {
            Some(ValueSource::CommandLine) => Some(Source::Flag),
            Some(ValueSource::EnvVariable) => Some(Source::Environment),
            Some(ValueSource::DefaultValue) => Some(Source::Default),
            _ => None,
        };
        let source = match (given, from_file.get(key)) {
            (Some(s @ (Source::Flag | Source::Environment)), _) => s,
            (_, Some(values)) => {
                for v in values {
                    argv.push(format!("--{}={v}", setting.long).into());
                }
                Source::File
            }
            (Some(s), None) => s,
            (None, None) => Source::Unset,
        };
        sources.insert(key.clone(), source);
    }
    if !argv.is_empty() {
        // what is no setting stays as the command line gave it
        let (config, print_config) = (args.config.clone(), args.print_config);
        let file_matches = file_command()
            .try_get_matches_from(argv)
            .map_err(|e| anyhow::anyhow!("the configuration file: {}", e.to_string().trim()))?;
        // only the settings the file gives are present here: the rest stay
        args.update_from_arg_matches(&file_matches).map_err(|e| anyhow::anyhow!("{e}"))?;
        (args.config, args.print_config) = (config, print_config);
    }
    Ok(Resolved { args, sources })
}

/// A URL with its password (if any) shown as `***`; `***` whole when it
/// cannot be read as a URL.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "***".to_owned(),
    }
}

impl Resolved {
    /// The effective configuration as TOML that `--config` reads back, secrets
    /// shown as `***`, each line followed by where its value came from.
    pub fn to_toml(&self) -> String {
        let a = &self.args;
        let secret = |s: &Option<Secret>| s.as_ref().map(|_| toml::Value::String("***".into()));
        let text = |s: &Option<String>| s.clone().map(toml::Value::String);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| toml::Value::String(p.display().to_string()));
        let int = |n: u32| Some(toml::Value::Integer(i64::from(n)));
        let values: Vec<(&str, Option<toml::Value>)> = vec![
            ("listen", Some(toml::Value::String(a.listen.to_string()))),
            ("database", Some(toml::Value::String(redact_url(a.database.url.expose())))),
            ("session_minutes", int(a.session_minutes)),
            ("session_idle_minutes", int(a.session_idle_minutes)),
            ("smtp_url", a.smtp_url.as_ref().map(|s| toml::Value::String(redact_url(s.expose())))),
            ("mail_from", Some(toml::Value::String(a.mail_from.clone()))),
            ("public_url", text(&a.public_url)),
            ("oidc_issuer", text(&a.oidc_issuer)),
            ("oidc_client_id", text(&a.oidc_client_id)),
            ("oidc_client_secret_file", path(&a.oidc_client_secret_file)),
            ("oidc_name", Some(toml::Value::String(a.oidc_name.clone()))),
            ("local_sign_in", Some(toml::Value::String(a.local_sign_in.as_str().to_owned()))),
            ("secret_key_file", Some(toml::Value::String(a.secret_key_file.display().to_string()))),
            ("history_key_file", path(&a.history_key_file)),
            ("checkpoint_file", path(&a.checkpoint_file)),
            ("checkpoint_webhook", secret(&a.checkpoint_webhook)),
            ("checkpoint_every_minutes", int(a.checkpoint_every_minutes)),
            ("replication_workers", int(a.replication_workers)),
            ("platform_concurrency", int(a.platform_concurrency)),
            ("reconcile_minutes", int(a.reconcile_minutes)),
            ("replication_lease_seconds", int(a.replication_lease_seconds)),
            ("shutdown_grace_seconds", int(a.shutdown_grace_seconds)),
            ("node_name", text(&a.node_name)),
            ("header_timeout_seconds", int(a.header_timeout_seconds)),
            ("body_timeout_seconds", int(a.body_timeout_seconds)),
            ("max_connections", int(a.max_connections)),
            (
                "trusted_proxies",
                Some(toml::Value::Array(
                    a.trusted_proxies.iter().map(|ip| toml::Value::String(ip.to_string())).collect(),
                )),
            ),
            ("metrics_token", secret(&a.metrics_token)),
            ("otlp_endpoint", text(&a.otlp_endpoint)),
            ("log", Some(toml::Value::String(a.log.clone()))),
        ];
        let mut out = String::from("# canopy serve: the effective configuration (secrets shown as \"***\")\n");
        if let Some(file) = &a.config {
            out.push_str(&format!("# configuration file: {}\n", file.display()));
        }
        for (key, value) in values {
            let source = self.sources.get(key).copied().unwrap_or(Source::Unset);
            match value {
                Some(v) => out.push_str(&format!("{key} = {v} # {}\n", source.as_str())),
                None => out.push_str(&format!("# {key}: not set\n")),
            }
        }
        for (key, from, set) in [
            ("admin_password", "CANOPY_ADMIN_PASSWORD", a.admin_password.is_some()),
            ("secret_key", "CANOPY_SECRET_KEY", a.secret_key.is_some()),
            ("history_key", "CANOPY_HISTORY_KEY", a.history_key.is_some()),
            ("oidc_client_secret", "CANOPY_OIDC_CLIENT_SECRET", a.oidc_client_secret.is_some()),
        ] {
            let state = if set { "\"***\"" } else { "not set" };
            out.push_str(&format!("# {key} (environment only, {from}): {state}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every setting `to_toml` prints is a key the file takes, and the
    /// reverse: the two lists cannot drift apart.
    #[test]
    fn if1_config_file_keys_are_the_printed_keys() {
        let known: Vec<String> = settings().into_keys().collect();
        let cmd = ServeArgs::augment_args(Command::new("serve"));
        let m = cmd.try_get_matches_from(["serve"]).unwrap();
        let args = ServeArgs::from_arg_matches(&m).unwrap();
        let printed = Resolved { args, sources: BTreeMap::new() }.to_toml();
        let mut keys: Vec<String> = printed
            .lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                let key = l.split([' ', ':']).next()?;
                (!key.is_empty()
                    && !l.contains("environment only")
                    && !l.starts_with("canopy serve")
                    && !l.starts_with("configuration file"))
                .then(|| key.to_owned())
            })
            .collect();
        keys.sort();
        assert_eq!(keys, known);
    }
}
