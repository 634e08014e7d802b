//! `canopy platform ...`, `canopy landing-zone ...`.
//!
//! A platform's secrets are write-only: the server answers only their names.
//! Give them with `--secret-from-env KEY=ENVVAR` so they stay out of the
//! process list; `--secret KEY=VALUE` works too but shows the value in `ps`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;

use canopy_api_types::{CreateLandingZone, CreatePlatform, LandingZone, Platform, UpdateLandingZone, UpdatePlatform};
use clap::Subcommand;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use serde_json::{Map, Value};

use super::api::CliError;
use super::render::{self, Render};
use super::{Ctx, ListOpts};

/// A secret's value: never shown, not even in debug output.
#[derive(Clone)]
pub struct SecretValue(String);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `KEY=VALUE`, split at the first `=`; the key must not be empty.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        Some(_) => Err("the KEY before `=` is empty".into()),
        None => Err("expected KEY=VALUE".into()),
    }
}

/// `KEY=VALUE` for a secret given on the command line.
fn secret_value(s: &str) -> Result<(String, SecretValue), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), SecretValue(v.to_owned()))),
        Some(_) => Err("the KEY before `=` is empty".into()),
        None => Err("expected KEY=VALUE (better: --secret-from-env KEY=ENVVAR)".into()),
    }
}

/// Parses `--secret KEY=VALUE` like a value parser function would, but its
/// usage error does not repeat the argument: without `=` it may be the
/// secret itself, which must not end up in a log.
#[derive(Clone)]
struct SecretParser;

impl TypedValueParser for SecretParser {
    type Value = (String, SecretValue);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let flag = arg.map_or_else(|| "--secret".to_owned(), ToString::to_string);
        let invalid = |why: &str| {
            clap::Error::raw(ErrorKind::ValueValidation, format!("invalid value for '{flag}': {why}\n")).with_cmd(cmd)
        };
        let s = value.to_str().ok_or_else(|| invalid("not valid UTF-8"))?;
        secret_value(s).map_err(|e| invalid(&e))
    }
}

/// `KEY=ENVVAR`: the secret KEY, read from the environment variable ENVVAR.
fn secret_from_env(s: &str) -> Result<(String, SecretValue), String> {
    let (key, var) = match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => (k.trim(), v.trim()),
        _ => return Err("expected KEY=ENVVAR".into()),
    };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok((key.to_owned(), SecretValue(v))),
        Ok(_) => Err(format!("the environment variable {var} is empty")),
        Err(std::env::VarError::NotPresent) => Err(format!("the environment variable {var} is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("the environment variable {var} is not valid UTF-8")),
    }
}

/// `KEY=VALUE` for a landing zone: VALUE as JSON when it parses
/// (`quota={"pods":"20"}`), else as a string.
fn zone_setting(s: &str) -> Result<(String, Value), String> {
    let (k, v) = key_value(s)?;
    let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
    Ok((k, value))
}

fn string_map(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

/// `--secret` and `--secret-from-env` together; a key given twice takes the last value.
fn secret_map(given: Vec<(String, SecretValue)>, from_env: Vec<(String, SecretValue)>) -> Map<String, Value> {
    given.into_iter().chain(from_env).map(|(k, v)| (k, Value::String(v.0))).collect()
}

/// A setting's value for people: strings as they are, anything else as JSON.
fn value_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn settings_text(settings: &Map<String, Value>) -> String {
    let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
    render::list(&pairs)
}

fn mapping_text(mapping: &BTreeMap<String, String>) -> String {
    if mapping.is_empty() {
        return "-".into();
    }
    mapping.iter().map(|(r, pr)| format!("{r}={pr}")).collect::<Vec<_>>().join(", ")
}

impl Render for Platform {
    const HEADERS: &'static [&'static str] =
        &["IDENTIFIER", "TYPE", "DELETION", "LZ REQUIRED", "SECRETS", "ROLE MAPPING"];
    fn row(&self) -> Vec<String> {
        vec![
            self.identifier.clone(),
            self.platform_type.clone(),
            self.deletion.clone(),
            render::yes_no(self.landing_zone_required),
            render::list(&self.secrets),
            mapping_text(&self.role_mapping),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("identifier", self.identifier.clone()),
            ("type", self.platform_type.clone()),
            ("settings", settings_text(&self.settings)),
            ("secrets", render::list(&self.secrets)),
            ("role_mapping", mapping_text(&self.role_mapping)),
            ("landing_zone_required", render::yes_no(self.landing_zone_required)),
            ("deletion", self.deletion.clone()),
            ("drift_policy", self.drift_policy.clone()),
            ("created_at", render::time(self.created_at)),
        ]
    }
}

impl Render for LandingZone {
    const HEADERS: &'static [&'static str] = &["IDENTIFIER", "NAME", "SETTINGS", "CREATED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.identifier.clone(),
            self.display_name.clone(),
            settings_text(&self.settings),
            render::time(self.created_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("platform", self.platform.clone()),
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("settings", settings_text(&self.settings)),
            ("created_at", render::time(self.created_at)),
        ]
    }
}

#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// List the platforms.
    List {
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a platform (its secrets by name only).
    Show {
        /// The platform's identifier.
        platform: String,
    },
    /// Register a platform (admins, platform engineers).
    ///
    /// Example: CANOPY_K8S_TOKEN=... canopy platform create k8s --type kubernetes
    /// --setting api_url=https://k8s.example.org:6443 --secret-from-env token=CANOPY_K8S_TOKEN
    /// --role-mapping project_user=edit
    Create {
        /// Identifier: lowercase letters, digits and dashes, 1 to 32 characters.
        platform: String,
        /// aws, azure, gcp, kubernetes, openshift, openstack, cloudfoundry or osb.
        #[arg(long = "type", value_name = "TYPE")]
        platform_type: String,
        /// A connection setting, e.g. region=eu-central-1 (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = key_value)]
        settings: Vec<(String, String)>,
        /// A secret, read from the environment variable ENVVAR so that it does
        /// not show in the process list (repeatable).
        #[arg(long = "secret-from-env", value_name = "KEY=ENVVAR", value_parser = secret_from_env)]
        secrets_from_env: Vec<(String, SecretValue)>,
        /// A secret given on the command line: it shows in the process list
        /// and the shell history, prefer --secret-from-env (repeatable).
        #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = SecretParser)]
        secrets: Vec<(String, SecretValue)>,
        /// Map a project role to the platform's role, e.g. project_user=edit (repeatable).
        #[arg(long = "role-mapping", value_name = "PROJECT_ROLE=PLATFORM_ROLE", value_parser = key_value)]
        role_mapping: Vec<(String, String)>,
        /// New tenants on this platform must choose a landing zone.
        #[arg(long)]
        landing_zone_required: bool,
        /// Whether tenants are deleted by Canopy or by hand (default: automatic
        /// for openstack, cloudfoundry and osb, manual for the others).
        #[arg(long, value_parser = ["automatic", "manual"])]
        deletion: Option<String>,
        /// What replication does with drift made outside Canopy: repair it
        /// (default) or only report it in the history.
        #[arg(long, value_parser = ["repair", "report"])]
        drift_policy: Option<String>,
    },
    /// Change a platform (admins, platform engineers).
    Update {
        /// The platform's identifier.
        platform: String,
        /// Replace all settings with these (repeatable; give every required one).
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = key_value)]
        settings: Vec<(String, String)>,
        /// Rotate a secret, read from the environment variable ENVVAR (repeatable;
        /// the secrets not named keep their values).
        #[arg(long = "secret-from-env", value_name = "KEY=ENVVAR", value_parser = secret_from_env)]
        secrets_from_env: Vec<(String, SecretValue)>,
        /// Rotate a secret given on the command line (shows in the process
        /// list; prefer --secret-from-env).
        #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = SecretParser)]
        secrets: Vec<(String, SecretValue)>,
        /// Replace the role mapping with these (repeatable).
        #[arg(
            long = "role-mapping",
            value_name = "PROJECT_ROLE=PLATFORM_ROLE",
            value_parser = key_value,
            conflicts_with = "no_role_mapping"
        )]
        role_mapping: Vec<(String, String)>,
        /// Remove every role mapping.
        #[arg(long)]
        no_role_mapping: bool,
        /// Whether new tenants must choose a landing zone.
        #[arg(long, value_name = "true|false")]
        landing_zone_required: Option<bool>,
        /// Whether tenants are deleted by Canopy or by hand.
        #[arg(long, value_parser = ["automatic", "manual"])]
        deletion: Option<String>,
        /// Repair drift made outside Canopy, or only report it.
        #[arg(long, value_parser = ["repair", "report"])]
        drift_policy: Option<String>,
    },
    /// Remove a platform and its landing zones (admins, platform engineers).
    Delete {
        /// The platform's identifier.
        platform: String,
    },
}

pub async fn platform(ctx: &Ctx, cmd: PlatformCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        PlatformCommand::List { list } => {
            let (items, _) = client.list(&["platforms"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<Platform>(items)
        }
        PlatformCommand::Show { platform } => {
            ctx.print_one::<Platform>(client.get(&["platforms", &platform], &[]).await?)
        }
        PlatformCommand::Create {
            platform,
            platform_type,
            settings,
            secrets_from_env,
            secrets,
            role_mapping,
            landing_zone_required,
            deletion,
            drift_policy,
        } => {
            let body = CreatePlatform {
                identifier: platform,
                platform_type,
                settings: string_map(settings),
                secrets: secret_map(secrets, secrets_from_env),
                role_mapping: role_mapping.into_iter().collect(),
                landing_zone_required,
                deletion,
                drift_policy,
            };
            ctx.print_one::<Platform>(client.post(&["platforms"], &body).await?)
        }
        PlatformCommand::Update {
            platform,
            settings,
            secrets_from_env,
            secrets,
            role_mapping,
            no_role_mapping,
            landing_zone_required,
            deletion,
            drift_policy,
        } => {
            let role_mapping = if no_role_mapping {
                Some(BTreeMap::new())
            } else {
                Some(role_mapping.into_iter().collect::<BTreeMap<_, _>>()).filter(|m| !m.is_empty())
            };
            let body = UpdatePlatform {
                settings: Some(string_map(settings)).filter(|m| !m.is_empty()),
                secrets: Some(secret_map(secrets, secrets_from_env)).filter(|m| !m.is_empty()),
                role_mapping,
                landing_zone_required,
                deletion,
                drift_policy,
            };
            if body.settings.is_none()
                && body.secrets.is_none()
                && body.role_mapping.is_none()
                && body.landing_zone_required.is_none()
                && body.deletion.is_none()
                && body.drift_policy.is_none()
            {
                return Err(CliError::Usage(
                    "nothing to change: give --setting, --secret-from-env, --secret, --role-mapping, \
                     --no-role-mapping, --landing-zone-required, --deletion or --drift-policy"
                        .into(),
                ));
            }
            ctx.print_one::<Platform>(client.patch(&["platforms", &platform], &body).await?)
        }
        PlatformCommand::Delete { platform } => {
            client.delete(&["platforms", &platform]).await?;
            ctx.done(format!("Deleted platform {platform}"));
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum LandingZoneCommand {
    /// List the landing zones of a platform.
    List {
        /// The platform's identifier.
        platform: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a landing zone.
    Show {
        /// The platform's identifier.
        platform: String,
        /// The landing zone's identifier.
        zone: String,
    },
    /// Add a landing zone to a platform (admins, platform engineers).
    Create {
        /// The platform's identifier.
        platform: String,
        /// Identifier: lowercase letters, digits and dashes, 1 to 32 characters.
        zone: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A setting new tenants get; VALUE is taken as JSON when it parses
        /// (quota={"pods":"20"}), else as a string (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = zone_setting)]
        settings: Vec<(String, Value)>,
    },
    /// Change a landing zone (admins, platform engineers).
    Update {
        /// The platform's identifier.
        platform: String,
        /// The landing zone's identifier.
        zone: String,
        /// A new display name.
        #[arg(long)]
        name: Option<String>,
        /// Replace all settings with these; VALUE as JSON when it parses, else
        /// as a string (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = zone_setting, conflicts_with = "no_settings")]
        settings: Vec<(String, Value)>,
        /// Remove every setting.
        #[arg(long)]
        no_settings: bool,
    },
    /// Remove a landing zone (admins, platform engineers).
    Delete {
        /// The platform's identifier.
        platform: String,
        /// The landing zone's identifier.
        zone: String,
    },
}

pub async fn landing_zone(ctx: &Ctx, cmd: LandingZoneCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        LandingZoneCommand::List { platform, list } => {
            let (items, _) =
                client.list(&["platforms", &platform, "landing-zones"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<LandingZone>(items)
        }
        LandingZoneCommand::Show { platform, zone } => {
            ctx.print_one::<LandingZone>(client.get(&["platforms", &platform, "landing-zones", &zone], &[]).await?)
        }
        LandingZoneCommand::Create { platform, zone, name, settings } => {
            let body =
                CreateLandingZone { identifier: zone, display_name: name, settings: settings.into_iter().collect() };
            ctx.print_one::<LandingZone>(client.post(&["platforms", &platform, "landing-zones"], &body).await?)
        }
        LandingZoneCommand::Update { platform, zone, name, settings, no_settings } => {
            let settings = if no_settings {
                Some(Map::new())
            } else {
                Some(settings.into_iter().collect::<Map<_, _>>()).filter(|m| !m.is_empty())
            };
            if name.is_none() && settings.is_none() {
                return Err(CliError::Usage("nothing to change: give --name, --setting or --no-settings".into()));
            }
            let body = UpdateLandingZone { display_name: name, settings };
            ctx.print_one::<LandingZone>(client.patch(&["platforms", &platform, "landing-zones", &zone], &body).await?)
        }
        LandingZoneCommand::Delete { platform, zone } => {
            client.delete(&["platforms", &platform, "landing-zones", &zone]).await?;
            ctx.done(format!("Deleted landing zone {zone} of platform {platform}"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(key_value("api_url=https://x?a=b"), Ok(("api_url".into(), "https://x?a=b".into())));
        assert_eq!(key_value("empty="), Ok(("empty".into(), String::new())));
        assert!(key_value("nokeyvalue").is_err());
        assert!(key_value("=value").is_err());
    }

    #[test]
    fn zone_settings_are_json_when_they_parse() {
        assert_eq!(zone_setting(r#"quota={"pods":"20"}"#), Ok(("quota".into(), serde_json::json!({"pods": "20"}))));
        assert_eq!(zone_setting("tier=prod"), Ok(("tier".into(), Value::String("prod".into()))));
        assert_eq!(zone_setting("n=3"), Ok(("n".into(), serde_json::json!(3))));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let Ok((k, v)) = secret_value("token=hunter2-secret") else { panic!("a valid secret is refused") };
        assert_eq!(k, "token");
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(secret_value("hunter2-secret").is_err_and(|e| !e.contains("hunter2")));
    }
}
