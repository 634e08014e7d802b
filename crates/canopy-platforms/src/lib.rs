//! How Canopy speaks to cloud platforms: the [`Platform`] trait and one
//! adapter per platform type, each against the platform's real API.
//!
//! Every call is idempotent (granting what is held, revoking what is not, or
//! ensuring an existing tenant succeeds), so the engine may repeat any call
//! after a crash or a lost answer. Failures say whether a retry can help
//! ([`PlatformError::Retryable`], with the platform's `Retry-After`) or not
//! ([`PlatformError::Permanent`], with the platform's own message).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use canopy_domain::platforms::PlatformType;
use serde_json::{Map, Value};

/// A platform's `Retry-After` header (delay in seconds), capped at
/// [`canopy_domain::replication::MAX_RETRY_AFTER`]: a platform's answer is
/// outside input, and no value of it may overflow a time computation or park
/// a task for ever (SE5). The HTTP-date form is ignored (the engine's own
/// backoff applies).
pub fn retry_after(header: &str) -> Option<Duration> {
    let secs: u64 = header.trim().parse().ok()?;
    let cap = canopy_domain::replication::MAX_RETRY_AFTER.unsigned_abs();
    Some(Duration::from_secs(secs).min(cap))
}

/// The most of a platform's answer an adapter reads: answers are outside
/// input, and a platform (or whoever answers at its address) must not make
/// Canopy hold an unbounded body in memory.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// A JSON answer read up to [`MAX_ANSWER_BYTES`]: `Null` when it is empty or
/// not JSON, an error when it is larger.
pub(crate) async fn json_answer(mut res: reqwest::Response) -> Result<Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
        if body.len().saturating_add(chunk.len()) > MAX_ANSWER_BYTES {
            return Err(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub(crate) fn retryable(message: impl Into<String>, retry_after: Option<Duration>) -> PlatformError {
    PlatformError::Retryable { message: message.into(), retry_after }
}

pub(crate) fn permanent(message: impl Into<String>) -> PlatformError {
    PlatformError::Permanent { message: message.into() }
}

/// A path segment or query value, percent-encoded (all but RFC 3986's
/// unreserved characters).
pub(crate) fn enc(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A platform's `Retry-After` header, when it sent one (see [`retry_after`]).
pub(crate) fn retry_after_of(res: &reqwest::Response) -> Option<Duration> {
    res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after)
}

/// The HTTP client of a platform that speaks REST: a 30 s timeout, the
/// platform's own CA (PEM) trusted besides the system's, and no redirects
/// followed, so its token goes to no address but the one configured (SE4).
pub(crate) fn http_client(ca_cert: Option<&str>) -> Result<reqwest::Client, PlatformError> {
    let mut builder =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_cert {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| permanent(format!("the platform's CA certificate cannot be read: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| permanent(format!("building the HTTP client: {e}")))
}

/// An OAuth 2.0 access token from the token endpoint `url` for the grant
/// in `form` (client authentication by HTTP Basic where `basic` is given),
/// with how long it lives, bounded: the lifetime is outside input, and no
/// instant may overflow. `who` names the endpoint in messages ("the Azure
/// sign-in"). Throttling and server errors are retryable, a refusal not.
pub(crate) async fn oauth_token(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    who: &str,
) -> Result<(String, Duration), PlatformError> {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some((user, password)) = basic {
        req = req.basic_auth(user, Some(password));
    }
    let res = req.send().await.map_err(|e| retryable(format!("cannot reach {who} at {url}: {e}"), None))?;
    let status = res.status();
    let wait = retry_after_of(&res);
    let body = json_answer(res).await.map_err(|e| retryable(format!("{who}: {e}"), None))?;
    let Some(token) = body["access_token"].as_str().filter(|_| status.is_success()) else {
        let why = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("no access token");
        let message = format!("{who} refused the platform's credentials: {status}: {why}");
        return Err(if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            retryable(message, wait)
        } else {
            permanent(message)
        });
    };
    // a number, or (as some endpoints send it) a string
    let lifetime = body["expires_in"]
        .as_u64()
        .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(300)
        .clamp(60, 24 * 3600);
    Ok((token.to_owned(), Duration::from_secs(lifetime)))
}

/// A failed call's error: throttling and server errors retryable (with the
/// platform's `Retry-After`), anything else permanent.
pub(crate) fn failed(status: reqwest::StatusCode, message: String, wait: Option<Duration>) -> PlatformError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        retryable(message, wait)
    } else {
        permanent(message)
    }
}

pub mod aws;
pub mod azure;
pub mod cloudfoundry;
pub mod gcp;
pub mod keystone;
pub mod kubernetes;
pub mod osb;

/// What a new tenant is made from.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    /// A stable, unique name for the tenant on the platform (e.g. `team-a-web`).
    pub name: String,
    pub description: String,
    /// The landing zone's settings (TN2), empty without a landing zone.
    pub landing_zone: Map<String, Value>,
}

/// A tenant on a platform: the platform's own id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRef {
    pub external_id: String,
}

/// A person as a platform account is made for them.
#[derive(Debug, Clone)]
pub struct PlatformUser {
    pub username: String,
    pub email: String,
}

/// A role a platform account holds in a tenant, as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Held {
    pub username: String,
    pub platform_role: String,
}

/// What Canopy manages in a tenant: the assignments it wants there or made
/// there, and the platform roles of the role mapping. A platform that cannot
/// list every assignment (an Open Service Broker lists no bindings) asks
/// about these; one that cannot list them cheaply (AWS, per permission set)
/// looks at least at these roles.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub assignments: BTreeSet<Held>,
    pub roles: BTreeSet<String>,
    /// The people Canopy knows in the tenant, username → e-mail address:
    /// those bound to the project and those it gave a role there. A
    /// platform that names people by e-mail address (Google Cloud IAM) or
    /// by records of its own (Cloud Foundry) maps them back to usernames
    /// with it; anyone else holding a role is reported under a name of the
    /// platform's (e.g. `user:someone@example.org`), as someone foreign.
    pub people: BTreeMap<String, String>,
}

impl Scope {
    /// The username of the person with this e-mail address (compared
    /// without case), if Canopy knows them here.
    pub fn username_of(&self, email: &str) -> Option<&str> {
        self.people.iter().find(|(_, e)| e.eq_ignore_ascii_case(email)).map(|(u, _)| u.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform is unreachable, overloaded or failing: try again later
    /// (not before `retry_after`, when the platform said so).
    #[error("{message}")]
    Retryable { message: String, retry_after: Option<Duration> },
    /// The platform refused the call for a reason a retry cannot change.
    #[error("{message}")]
    Permanent { message: String },
}

/// The calls replication makes on a platform.
pub trait Platform: Send + Sync {
    /// Create the tenant, or find the one made before under the same name.
    fn ensure_tenant(&self, spec: &TenantSpec) -> impl Future<Output = Result<TenantRef, PlatformError>> + Send;

    /// Every role held by a user account in the tenant, at least within
    /// `scope` (what Canopy manages there): platforms that list everything
    /// ignore it; the others ask about what it names.
    fn observe(
        &self,
        tenant: &TenantRef,
        scope: &Scope,
    ) -> impl Future<Output = Result<BTreeSet<Held>, PlatformError>> + Send;

    /// Give `user` (creating their account when needed) `platform_role` in the tenant.
    fn grant(
        &self,
        tenant: &TenantRef,
        user: &PlatformUser,
        platform_role: &str,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Take `platform_role` in the tenant from `user`: a person Canopy
    /// knows (with their e-mail address), or a holder [`Platform::observe`]
    /// named in the platform's terms (the address then empty).
    fn revoke(
        &self,
        tenant: &TenantRef,
        user: &PlatformUser,
        platform_role: &str,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// What the tenant still holds that its deletion would destroy, as
    /// people should read it (e.g. `project child-a`); empty when none (DL2).
    fn find_resources(&self, tenant: &TenantRef) -> impl Future<Output = Result<Vec<String>, PlatformError>> + Send;

    /// Delete the tenant (gone already counts as done).
    fn delete_tenant(&self, tenant: &TenantRef) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// Every platform type Canopy has an adapter for, behind one type.
pub enum AnyPlatform {
    Aws(aws::Aws),
    Azure(azure::Azure),
    CloudFoundry(cloudfoundry::CloudFoundry),
    Gcp(gcp::Gcp),
    Kubernetes(kubernetes::Kubernetes),
    OpenStack(keystone::Keystone),
    Osb(osb::ServiceBroker),
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, PlatformError> {
    map.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| PlatformError::Permanent { message: format!("the platform has no {key} configured") })
}

fn optional_text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Connect to a platform from its registration: type, settings and the
/// decrypted secrets (checked when the platform was registered).
pub fn connect(
    ty: PlatformType,
    settings: &Map<String, Value>,
    secrets: &Map<String, Value>,
) -> Result<AnyPlatform, PlatformError> {
    match ty {
        PlatformType::Aws => Ok(AnyPlatform::Aws(aws::Aws::new(aws::AwsConfig {
            region: text(settings, "region")?.to_owned(),
            endpoint_url: optional_text(settings, "endpoint_url"),
            access_key_id: text(secrets, "access_key_id")?.to_owned(),
            secret_access_key: text(secrets, "secret_access_key")?.to_owned(),
        }))),
        PlatformType::Azure => {
            let public = azure::AzureConfig::public(
                text(settings, "tenant_id")?,
                text(secrets, "client_id")?,
                text(secrets, "client_secret")?,
            );
            Ok(AnyPlatform::Azure(azure::Azure::new(azure::AzureConfig {
                billing_scope: optional_text(settings, "billing_scope"),
                authority_url: optional_text(settings, "authority_url").unwrap_or(public.authority_url.clone()),
                arm_url: optional_text(settings, "arm_url").unwrap_or(public.arm_url.clone()),
                graph_url: optional_text(settings, "graph_url").unwrap_or(public.graph_url.clone()),
                arm_scope: optional_text(settings, "arm_scope").unwrap_or(public.arm_scope.clone()),
                graph_scope: optional_text(settings, "graph_scope").unwrap_or(public.graph_scope.clone()),
                ca_cert: optional_text(settings, "ca_cert"),
                ..public
            })?))
        }
        PlatformType::Gcp => {
            let key: gcp::ServiceAccountKey =
                serde_json::from_str(text(secrets, "service_account_key")?).map_err(|e| PlatformError::Permanent {
                    message: format!("the service-account key cannot be read: {e}"),
                })?;
            let public = gcp::GcpConfig::public(key, text(settings, "parent")?);
            Ok(AnyPlatform::Gcp(gcp::Gcp::new(gcp::GcpConfig {
                crm_url: optional_text(settings, "crm_url").unwrap_or(public.crm_url.clone()),
                asset_url: optional_text(settings, "asset_url").unwrap_or(public.asset_url.clone()),
                ca_cert: optional_text(settings, "ca_cert"),
                ..public
            })?))
        }
        PlatformType::CloudFoundry => {
            Ok(AnyPlatform::CloudFoundry(cloudfoundry::CloudFoundry::new(cloudfoundry::CloudFoundryConfig {
                api_url: text(settings, "api_url")?.to_owned(),
                organization: text(settings, "organization")?.to_owned(),
                origin: optional_text(settings, "origin").unwrap_or_else(|| "uaa".into()),
                username: text(secrets, "username")?.to_owned(),
                password: text(secrets, "password")?.to_owned(),
                ca_cert: optional_text(settings, "ca_cert"),
                uaa_url: optional_text(settings, "uaa_url"),
            })?))
        }
        PlatformType::Kubernetes | PlatformType::OpenShift => {
            Ok(AnyPlatform::Kubernetes(kubernetes::Kubernetes::new(kubernetes::KubernetesConfig {
                api_url: text(settings, "api_url")?.to_owned(),
                ca_cert: optional_text(settings, "ca_cert"),
                token: text(secrets, "token")?.to_owned(),
                openshift: ty == PlatformType::OpenShift,
            })?))
        }
        PlatformType::OpenStack => Ok(AnyPlatform::OpenStack(keystone::Keystone::new(keystone::KeystoneConfig {
            auth_url: text(settings, "auth_url")?.to_owned(),
            domain: text(settings, "domain")?.to_owned(),
            username: text(secrets, "username")?.to_owned(),
            password: text(secrets, "password")?.to_owned(),
        })?)),
        PlatformType::Osb => Ok(AnyPlatform::Osb(osb::ServiceBroker::new(osb::BrokerConfig {
            broker_url: text(settings, "broker_url")?.to_owned(),
            service_id: text(settings, "service_id")?.to_owned(),
            plan_id: text(settings, "plan_id")?.to_owned(),
            username: text(secrets, "username")?.to_owned(),
            password: text(secrets, "password")?.to_owned(),
        })?)),
    }
}

/// Call the same method on whichever adapter `self` holds.
macro_rules! dispatch {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            AnyPlatform::Aws($p) => $call.await,
            AnyPlatform::Azure($p) => $call.await,
            AnyPlatform::CloudFoundry($p) => $call.await,
            AnyPlatform::Gcp($p) => $call.await,
            AnyPlatform::Kubernetes($p) => $call.await,
            AnyPlatform::OpenStack($p) => $call.await,
            AnyPlatform::Osb($p) => $call.await,
        }
    };
}

impl Platform for AnyPlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        dispatch!(self, p => p.ensure_tenant(spec))
    }

    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        dispatch!(self, p => p.observe(tenant, scope))
    }

    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        dispatch!(self, p => p.grant(tenant, user, platform_role))
    }

    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        dispatch!(self, p => p.revoke(tenant, user, platform_role))
    }

    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        dispatch!(self, p => p.find_resources(tenant))
    }

    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        dispatch!(self, p => p.delete_tenant(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn se5_a_platforms_retry_after_is_capped() {
        assert_eq!(retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("9223372036854775807"), Some(Duration::from_secs(3600)));
        assert_eq!(retry_after("18446744073709551615"), Some(Duration::from_secs(3600)));
        assert_eq!(retry_after("99999999999999999999999"), None);
        assert_eq!(retry_after("-1"), None);
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
