//! Platforms, their connection settings and secrets, role mappings and
//! landing zones (TN1, TN2): the rules of what a valid registration is.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::names::InvalidValue;

/// The kinds of cloud platform Canopy can hold tenants on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlatformType {
    Aws,
    Azure,
    Gcp,
    Kubernetes,
    OpenShift,
    OpenStack,
    CloudFoundry,
    Osb,
}

impl PlatformType {
    pub const ALL: [PlatformType; 8] = [
        Self::Aws,
        Self::Azure,
        Self::Gcp,
        Self::Kubernetes,
        Self::OpenShift,
        Self::OpenStack,
        Self::CloudFoundry,
        Self::Osb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
            Self::Kubernetes => "kubernetes",
            Self::OpenShift => "openshift",
            Self::OpenStack => "openstack",
            Self::CloudFoundry => "cloudfoundry",
            Self::Osb => "osb",
        }
    }

    /// Platforms whose tenants Canopy deletes itself after checking for
    /// resources (DL2); the others wait for a platform engineer (DL3).
    pub fn default_deletion(self) -> DeletionMode {
        match self {
            Self::OpenStack | Self::CloudFoundry | Self::Osb => DeletionMode::Automatic,
            _ => DeletionMode::Manual,
        }
    }

    /// Connection settings: (name, required, kind).
    fn settings_schema(self) -> &'static [(&'static str, bool, Kind)] {
        use Kind::*;
        match self {
            Self::Aws => &[("region", true, Text), ("endpoint_url", false, Url)],
            // the endpoints and token scopes default to Azure's public cloud
            Self::Azure => &[
                ("tenant_id", true, Text),
                ("billing_scope", false, Text),
                ("authority_url", false, Url),
                ("arm_url", false, Url),
                ("graph_url", false, Url),
                ("arm_scope", false, Text),
                ("graph_scope", false, Text),
                ("ca_cert", false, Pem),
            ],
            // the endpoints default to Google's public ones
            Self::Gcp => &[
                ("parent", true, GcpParent),
                ("crm_url", false, Url),
                ("asset_url", false, Url),
                ("ca_cert", false, Pem),
            ],
            Self::Kubernetes | Self::OpenShift => &[("api_url", true, Url), ("ca_cert", false, Pem)],
            Self::OpenStack => &[("auth_url", true, Url), ("domain", true, Text)],
            Self::CloudFoundry => &[
                ("api_url", true, Url),
                ("organization", true, Text),
                ("origin", false, Text),
                ("uaa_url", false, Url),
                ("ca_cert", false, Pem),
            ],
            Self::Osb => &[("broker_url", true, Url), ("service_id", true, Text), ("plan_id", true, Text)],
        }
    }

    /// Secrets: every one is required text.
    fn secret_names(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &["access_key_id", "secret_access_key"],
            Self::Azure => &["client_id", "client_secret"],
            Self::Gcp => &["service_account_key"],
            Self::Kubernetes | Self::OpenShift => &["token"],
            Self::OpenStack | Self::CloudFoundry | Self::Osb => &["username", "password"],
        }
    }
}

impl FromStr for PlatformType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            InvalidValue("must be one of aws, azure, gcp, kubernetes, openshift, openstack, cloudfoundry, osb".into())
        })
    }
}

impl fmt::Display for PlatformType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a tenant's deletion is done by Canopy or confirmed by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionMode {
    Automatic,
    Manual,
}

impl DeletionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }
}

impl FromStr for DeletionMode {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "automatic" => Ok(Self::Automatic),
            "manual" => Ok(Self::Manual),
            _ => Err(InvalidValue("must be automatic or manual".into())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Url,
    Pem,
    /// `folders/N` or `organizations/N`.
    GcpParent,
    /// A Google Cloud service-account key file (JSON).
    ServiceAccountKey,
}

/// An invalid field: its path in the request (`settings.region`) and why.
pub type FieldProblem = (String, String);

fn check_kind(kind: Kind, v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Err("must be a string".into()) };
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > 16_384 {
        return Err("is too long".into());
    }
    match kind {
        Kind::Text => Ok(()),
        Kind::Url => {
            let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.starts_with('/') && !s.contains(char::is_whitespace) => Ok(()),
                _ => Err("must be an http:// or https:// URL".into()),
            }
        }
        Kind::GcpParent => {
            let number = s.strip_prefix("folders/").or_else(|| s.strip_prefix("organizations/"));
            match number {
                Some(n) if !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
                _ => Err("must be folders/NUMBER or organizations/NUMBER".into()),
            }
        }
        Kind::ServiceAccountKey => {
            let key: Value = serde_json::from_str(s).map_err(|_| "must be a service-account key file (JSON)")?;
            let text = |k: &str| key.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
            match (text("client_email"), text("private_key")) {
                (Some(_), Some(pem)) if pem.contains("-----BEGIN PRIVATE KEY-----") => Ok(()),
                (Some(_), Some(_)) => Err("private_key must be a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----)".into()),
                _ => Err("must be a service-account key file with client_email and private_key".into()),
            }
        }
        Kind::Pem => {
            if s.starts_with("-----BEGIN CERTIFICATE-----") && s.contains("-----END CERTIFICATE-----") {
                Ok(())
            } else {
                Err("must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)".into())
            }
        }
    }
}

/// Check a platform's connection settings. `partial` allows leaving out
/// required ones (a change of some settings).
pub fn check_settings(ty: PlatformType, settings: &Map<String, Value>, partial: bool) -> Vec<FieldProblem> {
    let schema = ty.settings_schema();
    let mut problems = Vec::new();
    for (name, required, kind) in schema {
        match settings.get(*name) {
            None if *required && !partial => problems.push((format!("settings.{name}"), "is required".into())),
            None => {}
            Some(v) => {
                if let Err(e) = check_kind(*kind, v) {
                    problems.push((format!("settings.{name}"), e));
                }
            }
        }
    }
    for key in settings.keys() {
        if !schema.iter().any(|(n, _, _)| n == key) {
            let known: Vec<&str> = schema.iter().map(|(n, _, _)| *n).collect();
            problems.push((format!("settings.{key}"), format!("is not a {ty} setting (known: {})", known.join(", "))));
        }
    }
    problems
}

/// Check a platform's secrets (all of them on registration; `partial` when
/// replacing some).
pub fn check_secrets(ty: PlatformType, secrets: &Map<String, Value>, partial: bool) -> Vec<FieldProblem> {
    let names = ty.secret_names();
    let mut problems = Vec::new();
    for name in names {
        match secrets.get(*name) {
            None if !partial => problems.push((format!("secrets.{name}"), "is required".into())),
            None => {}
            Some(v) => {
                let kind = if *name == "service_account_key" { Kind::ServiceAccountKey } else { Kind::Text };
                if let Err(e) = check_kind(kind, v) {
                    problems.push((format!("secrets.{name}"), e));
                }
            }
        }
    }
    for key in secrets.keys() {
        if !names.contains(&key.as_str()) {
            problems.push((format!("secrets.{key}"), format!("is not a {ty} secret (known: {})", names.join(", "))));
        }
    }
    problems
}

impl PlatformType {
    /// The settings that decide where the platform's secrets are sent: its
    /// address, the region or directory tenant that picks one, and the
    /// certificate trusted to be it (SE4).
    pub fn destination_settings(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &["region", "endpoint_url"],
            Self::Azure => &["tenant_id", "authority_url", "arm_url", "graph_url", "ca_cert"],
            // the token endpoint is the key's own `token_uri`: it changes only with the key
            Self::Gcp => &["crm_url", "asset_url", "ca_cert"],
            Self::Kubernetes | Self::OpenShift => &["api_url", "ca_cert"],
            Self::OpenStack => &["auth_url"],
            Self::CloudFoundry => &["api_url", "uaa_url", "ca_cert"],
            Self::Osb => &["broker_url"],
        }
    }
}

/// Whether a change of settings from `before` to `after` may keep the
/// platform's stored secrets (SE4). A change of where they are sent
/// ([`PlatformType::destination_settings`]) needs every secret given again
/// (`given`), so that nobody can make Canopy hand the stored ones to an
/// address of their choosing, unless an admin makes it. `Ok` names the
/// destination settings that changed (empty when none did), for the history.
pub fn check_destination_change(
    ty: PlatformType,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    given: Option<&Map<String, Value>>,
    by_admin: bool,
) -> Result<Vec<&'static str>, FieldProblem> {
    let moved: Vec<&'static str> =
        ty.destination_settings().iter().copied().filter(|k| before.get(*k) != after.get(*k)).collect();
    let all_given = given.is_some_and(|g| ty.secret_names().iter().all(|n| g.contains_key(*n)));
    if moved.is_empty() || all_given || by_admin {
        return Ok(moved);
    }
    Err((
        "secrets".to_owned(),
        format!(
            "changing {} sends this platform's secrets to a new address: give them again ({}), or ask an admin",
            moved.join(", "),
            ty.secret_names().join(", ")
        ),
    ))
}

/// Check a role mapping (project role identifier → platform role) against
/// the project roles that exist.
pub fn check_role_mapping(mapping: &BTreeMap<String, String>, project_roles: &[String]) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    for (role, platform_role) in mapping {
        if !project_roles.contains(role) {
            problems.push((format!("role_mapping.{role}"), format!("project role {role:?} does not exist")));
        } else if platform_role.trim().is_empty() || platform_role.chars().count() > 256 {
            problems.push((format!("role_mapping.{role}"), "must name a platform role (1 to 256 characters)".into()));
        }
    }
    problems
}

/// Check a landing zone's settings: a JSON object of at most 64 entries.
pub fn check_landing_zone_settings(settings: &Map<String, Value>) -> Vec<FieldProblem> {
    if settings.len() > 64 {
        return vec![("settings".into(), "must have at most 64 entries".into())];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    #[test]
    fn se4_a_new_address_needs_the_secrets_again_or_an_admin() {
        use super::*;
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        let before = obj(serde_json::json!({"auth_url": "https://keystone.example/v3", "domain": "Default"}));
        let moved = obj(serde_json::json!({"auth_url": "https://attacker.example/v3", "domain": "Default"}));
        let renamed = obj(serde_json::json!({"auth_url": "https://keystone.example/v3", "domain": "Other"}));
        let both = obj(serde_json::json!({"username": "admin", "password": "p"}));
        let one = obj(serde_json::json!({"password": "p"}));
        let t = PlatformType::OpenStack;
        assert_eq!(check_destination_change(t, &before, &renamed, None, false), Ok(vec![]));
        let refused = check_destination_change(t, &before, &moved, None, false);
        assert!(refused.as_ref().is_err_and(|(f, m)| f == "secrets" && m.contains("auth_url")), "{refused:?}");
        assert!(check_destination_change(t, &before, &moved, Some(&one), false).is_err());
        assert_eq!(check_destination_change(t, &before, &moved, Some(&both), false), Ok(vec!["auth_url"]));
        assert_eq!(check_destination_change(t, &before, &moved, None, true), Ok(vec!["auth_url"]));
        // a certificate trusted for the address counts as the address
        let k8s = obj(serde_json::json!({"api_url": "https://k"}));
        let ca = obj(
            serde_json::json!({"api_url": "https://k", "ca_cert": "-----BEGIN CERTIFICATE-----x-----END CERTIFICATE-----"}),
        );
        assert!(check_destination_change(PlatformType::Kubernetes, &k8s, &ca, None, false).is_err());
    }

    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn tn1_settings_are_checked_per_platform_type() {
        assert!(check_settings(PlatformType::Aws, &map(json!({"region": "eu-central-1"})), false).is_empty());
        let p = check_settings(PlatformType::Aws, &map(json!({"endpoint_url": "ftp://x", "zone": "a"})), false);
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["settings.region", "settings.endpoint_url", "settings.zone"]);
        assert!(
            check_settings(
                PlatformType::OpenStack,
                &map(json!({"auth_url": "http://127.0.0.1:5000/v3", "domain": "Default"})),
                false
            )
            .is_empty()
        );
        assert_eq!(
            check_settings(PlatformType::Kubernetes, &map(json!({"api_url": "https://k", "ca_cert": "nope"})), false)
                .len(),
            1
        );
        assert!(
            check_settings(PlatformType::Aws, &map(json!({"endpoint_url": "http://127.0.0.1:5000"})), true).is_empty()
        );
    }

    #[test]
    fn tn1_secrets_are_checked_per_platform_type() {
        assert!(check_secrets(PlatformType::Kubernetes, &map(json!({"token": "t"})), false).is_empty());
        assert_eq!(check_secrets(PlatformType::Aws, &map(json!({"access_key_id": "a"})), false).len(), 1);
        assert_eq!(check_secrets(PlatformType::Aws, &map(json!({"password": "a"})), true).len(), 1);
        let key = |v: Value| map(json!({"service_account_key": v.to_string()}));
        let good = json!({"client_email": "c@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n"});
        assert!(check_secrets(PlatformType::Gcp, &key(good), false).is_empty());
        let pkcs1 = json!({"client_email": "c@p", "private_key": "-----BEGIN RSA PRIVATE KEY-----"});
        assert!(check_secrets(PlatformType::Gcp, &key(pkcs1), false)[0].1.contains("PKCS#8"));
        let bare = map(json!({"service_account_key": "{}"}));
        assert!(check_secrets(PlatformType::Gcp, &bare, false)[0].1.contains("client_email"));
    }

    #[test]
    fn tn1_a_google_cloud_parent_is_a_folder_or_an_organization() {
        for ok in ["folders/123", "organizations/9"] {
            assert!(check_settings(PlatformType::Gcp, &map(json!({"parent": ok})), false).is_empty(), "{ok}");
        }
        for bad in ["folders/", "projects/1", "folders/12a", "123"] {
            assert_eq!(check_settings(PlatformType::Gcp, &map(json!({"parent": bad})), false).len(), 1, "{bad}");
        }
    }

    #[test]
    fn tn1_role_mapping_names_existing_project_roles() {
        let roles = vec!["project_user".to_owned()];
        let ok = BTreeMap::from([("project_user".to_owned(), "edit".to_owned())]);
        assert!(check_role_mapping(&ok, &roles).is_empty());
        let bad = BTreeMap::from([("nope".to_owned(), "edit".to_owned()), ("project_user".to_owned(), " ".to_owned())]);
        assert_eq!(check_role_mapping(&bad, &roles).len(), 2);
    }

    #[test]
    fn dl2_dl3_default_deletion_follows_the_platform_type() {
        assert_eq!(PlatformType::OpenStack.default_deletion(), DeletionMode::Automatic);
        assert_eq!(PlatformType::Aws.default_deletion(), DeletionMode::Manual);
        for t in PlatformType::ALL {
            assert_eq!(t.as_str().parse::<PlatformType>(), Ok(t));
        }
    }
}
