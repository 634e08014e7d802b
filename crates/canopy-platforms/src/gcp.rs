//! Google Cloud through Resource Manager v3 and Cloud Asset
//! (`docs/platforms/gcp-api.md` has every call with its source): a tenant is
//! a project made under the landing zone's folder (else the platform's
//! parent); people are Google accounts, named in the project's IAM policy as
//! `user:EMAIL`; roles are IAM roles (`roles/viewer`, `roles/editor`, a
//! predefined or custom role).
//!
//! Canopy signs in with a service-account key: it signs a JWT with the key
//! (RS256) and trades it for an access token at the key's `token_uri`, as
//! Google's own libraries do. The key never leaves Canopy; the token goes
//! only to the configured Resource Manager and Cloud Asset addresses.
//!
//! The IAM policy is read, changed and written back with its etag: a change
//! made meanwhile by someone else makes Google refuse the write (409
//! ABORTED), and the whole read-modify-write is repeated, so no concurrent
//! change is overwritten. Calls are paced within Google's published
//! quotas (reads and writes 10 a second, a project's creation costing 10),
//! and a 429 all the same is waited out with a growing pause. Members Canopy does not know (by the e-mail
//! addresses of [`Scope::people`]) are reported as `user:EMAIL`; groups,
//! service accounts, domains and conditional bindings are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, enc, permanent, retryable};

/// The audience of the token request's JWT: Google's token endpoint, the
/// value its own libraries send wherever the key's `token_uri` points.
const TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How a member Canopy does not know is named (`user:someone@example.org`).
const FOREIGN: &str = "user:";
/// The label on the projects Canopy makes.
const LABEL: (&str, &str) = ("managed-by", "canopy");
/// Asset types every project holds, which its deletion loses nothing of.
const BASELINE: [&str; 2] = ["cloudresourcemanager.googleapis.com/Project", "serviceusage.googleapis.com/Service"];
/// The most pages of one list read.
const MAX_PAGES: usize = 100;
/// How long one call waits for a new project before the engine is told to
/// come back (the project is found then).
const CREATE_WAIT: Duration = Duration::from_secs(20);
/// How often a read-modify-write of the IAM policy is tried when others
/// change the policy meanwhile.
const IAM_ATTEMPTS: u32 = 5;

/// Google's published per-project request quotas for Resource Manager
/// (reads, writes: 10 a second, 600 a minute; a project's creation costs
/// 10 writes) and Cloud Asset search (400 a minute): (units a second, burst).
const QUOTAS: [(f64, f64); 3] = [(10.0, 10.0), (10.0, 10.0), (400.0 / 60.0, 400.0)];

/// Which of [`QUOTAS`] a call draws on, and what it costs there.
fn quota_of(method: &Method, url: &str) -> (usize, f64) {
    if url.contains(":searchAllResources") {
        (2, 1.0)
    } else if *method == Method::GET || url.ends_with(":getIamPolicy") || url.ends_with(":testIamPermissions") {
        (0, 1.0)
    } else if *method == Method::POST && url.ends_with("/v3/projects") {
        (1, 10.0)
    } else {
        (1, 1.0)
    }
}

/// A request budget that refills at a steady rate (GCRA): each call
/// reserves its cost and is told how long to wait, so the calls of all of
/// a platform's tenants on this node stay within Google's quota instead of
/// drawing 429s and backing off.
#[derive(Debug)]
struct Pace {
    /// When the budget would be whole again with every reservation made so far.
    full_at: Option<Instant>,
}

impl Pace {
    fn reserve(&mut self, (per_second, burst): (f64, f64), cost: f64) -> Duration {
        let now = Instant::now();
        let start = self.full_at.map_or(now, |t| t.max(now));
        let full_at = start + Duration::from_secs_f64(cost / per_second);
        self.full_at = Some(full_at);
        // a call may go once the budget, less this call, is within the burst
        let window = Duration::from_secs_f64(burst / per_second);
        full_at.checked_sub(window).map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}

/// How often a call Google throttled without a `Retry-After` is repeated.
const THROTTLE_RETRIES: u32 = 4;

/// The `n`th pause of truncated exponential backoff: 2^n seconds (at most
/// 16) and up to a second of jitter, so that throttled callers spread out.
fn backoff(n: u32) -> Duration {
    let jitter = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_millis());
    Duration::from_secs(1 << n.min(4)) + Duration::from_millis(u64::from(jitter))
}

/// A service-account key file, as Google's console hands it out.
#[derive(Clone, serde::Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PEM, PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    TOKEN_AUDIENCE.to_owned()
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

/// Connection settings and credentials of a Google Cloud platform.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    pub key: ServiceAccountKey,
    /// Where projects are made unless the landing zone names a `folder`:
    /// `folders/N` or `organizations/N`.
    pub parent: String,
    /// e.g. `https://cloudresourcemanager.googleapis.com`
    pub crm_url: String,
    /// e.g. `https://cloudasset.googleapis.com`
    pub asset_url: String,
    /// A CA certificate (PEM) to trust besides the system's.
    pub ca_cert: Option<String>,
}

impl GcpConfig {
    /// Google's public endpoints.
    pub fn public(key: ServiceAccountKey, parent: &str) -> Self {
        Self {
            key,
            parent: parent.to_owned(),
            crm_url: "https://cloudresourcemanager.googleapis.com".into(),
            asset_url: "https://cloudasset.googleapis.com".into(),
            ca_cert: None,
        }
    }
}

pub struct Gcp {
    http: reqwest::Client,
    config: GcpConfig,
    signer: Box<RsaKeyPair>,
    token: Mutex<Option<(String, Instant)>>,
    /// The budgets of [`QUOTAS`] on this node.
    pace: std::sync::Mutex<[Pace; 3]>,
}

/// Google's own message from an error body (`{"error": {"message", "status"}}`).
fn google_message(status: StatusCode, body: &Value) -> String {
    let e = &body["error"];
    match (e["status"].as_str(), e["message"].as_str()) {
        (Some(s), Some(m)) => format!("Google Cloud answered {status}: {s}: {m}"),
        (None, Some(m)) | (Some(m), None) => format!("Google Cloud answered {status}: {m}"),
        (None, None) => format!("Google Cloud answered {status}"),
    }
}

/// The project ID of a tenant: Google's rules (6 to 30 lowercase letters,
/// digits and hyphens, a letter first, no hyphen last, no `google` or
/// `ssl`) applied to the tenant's name. A long name keeps its start and its
/// last nine characters (`-` and eight of the tenant's id), so IDs stay
/// distinct.
pub fn project_id(tenant_name: &str) -> String {
    let mut id: String = tenant_name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    id = id.replace("google", "g00gle").replace("ssl", "s5l");
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id.insert_str(0, "t-");
    }
    if id.len() > 30 {
        // ASCII only, so byte offsets are character boundaries
        let tail = id[id.len() - 9..].to_owned();
        id = format!("{}{tail}", id[..21].trim_end_matches('-'));
    }
    let mut id = id.trim_end_matches('-').to_owned();
    while id.len() < 6 {
        id.push('0');
    }
    id
}

/// The member an IAM policy names a person by.
fn member(email: &str) -> String {
    format!("user:{email}")
}

/// The unconditional binding of `role` in a policy, if any.
fn binding_of<'a>(policy: &'a mut Value, role: &str) -> Option<&'a mut Value> {
    policy["bindings"]
        .as_array_mut()?
        .iter_mut()
        .find(|b| b["role"].as_str() == Some(role) && b.get("condition").is_none_or(Value::is_null))
}

fn has_member(binding: &Value, m: &str) -> bool {
    binding["members"].as_array().into_iter().flatten().any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(m)))
}

/// `policy` with `m` added to `role`; `None` when it holds it already.
fn with_member(mut policy: Value, role: &str, m: &str) -> Option<Value> {
    match binding_of(&mut policy, role) {
        Some(b) if has_member(b, m) => return None,
        Some(b) => match b["members"].as_array_mut() {
            Some(members) => members.push(json!(m)),
            None => b["members"] = json!([m]),
        },
        None => {
            if !policy["bindings"].is_array() {
                policy["bindings"] = json!([]);
            }
            if let Some(bindings) = policy["bindings"].as_array_mut() {
                bindings.push(json!({"role": role, "members": [m]}));
            }
        }
    }
    Some(policy)
}

/// `policy` without `m` in `role` (a binding left empty goes); `None` when
/// it does not hold it.
fn without_member(mut policy: Value, role: &str, m: &str) -> Option<Value> {
    let b = binding_of(&mut policy, role)?;
    if !has_member(b, m) {
        return None;
    }
    if let Some(members) = b["members"].as_array_mut() {
        members.retain(|x| !x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(m)));
    }
    if let Some(bindings) = policy["bindings"].as_array_mut() {
        bindings.retain(|b| b["members"].as_array().is_some_and(|m| !m.is_empty()));
    }
    Some(policy)
}

impl Gcp {
    pub fn new(config: GcpConfig) -> Result<Self, PlatformError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(config.key.private_key.as_bytes()).map_err(|e| {
            permanent(format!("the service-account key's private_key is not a PKCS#8 PEM key (BEGIN PRIVATE KEY): {e}"))
        })?;
        let signer = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| permanent(format!("the service-account key's private_key is not an RSA key: {e}")))?;
        let http = crate::http_client(config.ca_cert.as_deref())?;
        let trim = |u: &str| u.trim_end_matches('/').to_owned();
        let config = GcpConfig { crm_url: trim(&config.crm_url), asset_url: trim(&config.asset_url), ..config };
        let pace = std::sync::Mutex::new([Pace { full_at: None }, Pace { full_at: None }, Pace { full_at: None }]);
        Ok(Self { http, config, signer: Box::new(signer), token: Mutex::default(), pace })
    }

    /// The signed JWT the token request carries (RFC 7523).
    fn assertion(&self) -> Result<String, PlatformError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.config.key.private_key_id});
        let claims = json!({
            "iss": self.config.key.client_email, "scope": SCOPE, "aud": TOKEN_AUDIENCE,
            "iat": now, "exp": now + 3600,
        });
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature)
            .map_err(|_| permanent("signing with the service-account key failed"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// An access token, fetched when none is held or it ends within a minute.
    async fn token(&self) -> Result<String, PlatformError> {
        let mut held = self.token.lock().await;
        if let Some((t, until)) = held.as_ref()
            && *until > Instant::now() + Duration::from_secs(60)
        {
            return Ok(t.clone());
        }
        let url = &self.config.key.token_uri;
        let assertion = self.assertion()?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)];
        let (token, lifetime) = crate::oauth_token(&self.http, url, &form, None, "Google's token endpoint").await?;
        *held = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// One call; 403 (Google's answer for a project that is missing or
    /// hidden) and 409 are answers, server errors retryable; a refused token
    /// is fetched again once. Google answers a spent quota with 429 and no
    /// `Retry-After`, and asks for truncated exponential backoff: the call
    /// is repeated after 1, 2, 4 and 8 seconds (and a jitter), then handed
    /// to the engine with the next pause as its `Retry-After`, so that the
    /// engine holds back the whole platform.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), PlatformError> {
        let (mut refreshed, mut throttled) = (false, 0u32);
        let (quota, cost) = quota_of(&method, url);
        loop {
            let wait = self.pace.lock().unwrap_or_else(|e| e.into_inner())[quota].reserve(QUOTAS[quota], cost);
            tokio::time::sleep(wait).await;
            let token = self.token().await?;
            let mut req = self.http.request(method.clone(), url).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req
                .send()
                .await
                .map_err(|e| retryable(format!("Google Cloud call {method} {url} failed: {e}"), None))?;
            let status = res.status();
            let retry_after = crate::retry_after_of(&res);
            let answer = crate::json_answer(res)
                .await
                .map_err(|e| retryable(format!("Google Cloud call {method} {url}: {e}"), None))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                *self.token.lock().await = None;
                continue;
            }
            if status.is_success() || status == StatusCode::FORBIDDEN || status == StatusCode::CONFLICT {
                return Ok((status, answer));
            }
            let message = google_message(status, &answer);
            if status == StatusCode::TOO_MANY_REQUESTS {
                let pause = backoff(throttled);
                if retry_after.is_none() && throttled < THROTTLE_RETRIES {
                    throttled += 1;
                    tokio::time::sleep(pause).await;
                    continue;
                }
                return Err(retryable(message, retry_after.or(Some(pause))));
            }
            return Err(crate::failed(status, message, retry_after));
        }
    }

    fn project_url(&self, id: &str) -> String {
        format!("{}/v3/projects/{}", self.config.crm_url, enc(id))
    }

    /// The project, or `None` when Google hides it (missing, or not Canopy's to see).
    async fn project(&self, id: &str) -> Result<Option<Value>, PlatformError> {
        let (status, body) = self.call(Method::GET, &self.project_url(id), None).await?;
        Ok(status.is_success().then_some(body))
    }

    /// Refuse a project that is gone or being deleted: it is not an empty tenant.
    async fn require_project(&self, id: &str) -> Result<(), PlatformError> {
        match self.project(id).await? {
            Some(p) if p["state"] == "ACTIVE" || p["state"] == 1 => Ok(()),
            Some(_) => Err(permanent(format!("project {id} is being deleted (outside Canopy?)"))),
            None => Err(permanent(format!("project {id} does not exist, or Canopy may not see it"))),
        }
    }

    /// The project Canopy made under this ID, or an error saying why it is
    /// not one (another's, being deleted, elsewhere in the hierarchy).
    fn adopt(id: &str, parent: &str, p: &Value) -> Result<TenantRef, PlatformError> {
        if p["labels"][LABEL.0] != LABEL.1 {
            return Err(permanent(format!("project ID {id} belongs to a project Canopy did not make")));
        }
        if !(p["state"] == "ACTIVE" || p["state"] == 1) {
            return Err(permanent(format!("project {id} is being deleted; restore it or delete the tenant")));
        }
        if p["parent"].as_str() != Some(parent) {
            let there = p["parent"].as_str().unwrap_or("?");
            return Err(permanent(format!("project {id} is under {there}, not {parent}")));
        }
        Ok(TenantRef { external_id: id.to_owned() })
    }

    /// Follow a long-running operation to its end (at most `wait`):
    /// `Some(response)` when done, `None` while Google works.
    async fn operation(&self, mut op: Value, wait: Duration) -> Result<Option<Value>, PlatformError> {
        let start = Instant::now();
        loop {
            if op["done"] == true {
                if op["error"].is_object() {
                    let e = &op["error"];
                    let m = e["message"].as_str().unwrap_or("no message");
                    return Err(permanent(format!("Google Cloud's operation failed: {m} (code {})", e["code"])));
                }
                return Ok(Some(op["response"].clone()));
            }
            let Some(name) = op["name"].as_str().filter(|n| n.starts_with("operations/") && !n.contains("..")) else {
                return Err(permanent("Google Cloud answered an operation without a name"));
            };
            if start.elapsed() > wait {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let url = format!("{}/v3/{name}", self.config.crm_url);
            let (status, next) = self.call(Method::GET, &url, None).await?;
            if !status.is_success() {
                return Err(permanent(google_message(status, &next)));
            }
            op = next;
        }
    }

    async fn get_policy(&self, id: &str) -> Result<Value, PlatformError> {
        let url = format!("{}:getIamPolicy", self.project_url(id));
        let (status, policy) =
            self.call(Method::POST, &url, Some(&json!({"options": {"requestedPolicyVersion": 3}}))).await?;
        if !status.is_success() {
            return Err(permanent(google_message(status, &policy)));
        }
        Ok(policy)
    }

    /// Read the project's IAM policy, change it with `change` (`None`: no
    /// change needed) and write it back with the etag read; when someone
    /// else changed it meanwhile (409 ABORTED), all of it again, after a
    /// growing pause, as Google asks.
    async fn modify_policy(&self, id: &str, change: impl Fn(Value) -> Option<Value>) -> Result<(), PlatformError> {
        let url = format!("{}:setIamPolicy", self.project_url(id));
        for attempt in 0..IAM_ATTEMPTS {
            let Some(policy) = change(self.get_policy(id).await?) else { return Ok(()) };
            let (status, answer) = self.call(Method::POST, &url, Some(&json!({"policy": policy}))).await?;
            if status.is_success() {
                return Ok(());
            }
            if !(status == StatusCode::CONFLICT && answer["error"]["status"] == "ABORTED") {
                return Err(permanent(google_message(status, &answer)));
            }
            tokio::time::sleep(backoff(attempt) / 4).await;
        }
        Err(retryable(format!("the IAM policy of project {id} keeps changing under Canopy; trying again later"), None))
    }
}

impl Platform for Gcp {
    /// A project per tenant, its ID made from the tenant's name (a repeated
    /// call finds the same one), under the landing zone's `folder` (else
    /// the platform's `parent`), labelled as Canopy's.
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let id = project_id(&spec.name);
        let parent = spec.landing_zone.get("folder").and_then(Value::as_str).unwrap_or(&self.config.parent).to_owned();
        // made before (a lost answer, a repeated call): the same project
        if let Some(p) = self.project(&id).await? {
            return Self::adopt(&id, &parent, &p);
        }
        let body = json!({"projectId": id, "parent": parent, "displayName": id, "labels": {LABEL.0: LABEL.1}});
        let url = format!("{}/v3/projects", self.config.crm_url);
        let (status, op) = self.call(Method::POST, &url, Some(&body)).await?;
        if status == StatusCode::CONFLICT {
            return match self.project(&id).await? {
                Some(p) => Self::adopt(&id, &parent, &p),
                // taken where Canopy cannot see, or still being made by an earlier call
                None => Err(retryable(
                    format!(
                        "project ID {id} exists but Canopy cannot see it (still being made, or taken by someone else)"
                    ),
                    None,
                )),
            };
        }
        if !status.is_success() {
            return Err(permanent(google_message(status, &op)));
        }
        match self.operation(op, CREATE_WAIT).await? {
            Some(_) => Ok(TenantRef { external_id: id }),
            None => Err(retryable(format!("Google Cloud is still making project {id}"), None)),
        }
    }

    /// The people holding the roles Canopy manages or asks about in the
    /// project's IAM policy: by Canopy username when Canopy knows their
    /// address, else as `user:EMAIL`.
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let id = &tenant.external_id;
        self.require_project(id).await?;
        let mut policy = self.get_policy(id).await?;
        let roles: BTreeSet<&str> = scope
            .roles
            .iter()
            .map(String::as_str)
            .chain(scope.assignments.iter().map(|h| h.platform_role.as_str()))
            .collect();
        let people: BTreeMap<String, &str> =
            scope.people.iter().map(|(u, e)| (e.to_ascii_lowercase(), u.as_str())).collect();
        let mut held = BTreeSet::new();
        for role in roles {
            let Some(b) = binding_of(&mut policy, role) else { continue };
            for m in b["members"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                let Some(email) = m.strip_prefix(FOREIGN) else { continue };
                let username = match people.get(&email.to_ascii_lowercase()) {
                    Some(u) => (*u).to_owned(),
                    None => m.to_owned(),
                };
                held.insert(Held { username, platform_role: role.to_owned() });
            }
        }
        Ok(held)
    }

    /// Add `user:EMAIL` to the role's binding (nothing when it is there).
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        if user.email.is_empty() {
            return Err(permanent(format!("{} has no e-mail address to name them in Google Cloud", user.username)));
        }
        let m = member(&user.email);
        self.modify_policy(&tenant.external_id, |p| with_member(p, platform_role, &m)).await
    }

    /// Take the person (by their address, or the `user:EMAIL` observe
    /// named) out of the role's binding; not there is what was asked for.
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let m = if user.username.starts_with(FOREIGN) {
            user.username.clone()
        } else if !user.email.is_empty() {
            member(&user.email)
        } else {
            return Err(permanent(format!(
                "Canopy knows no e-mail address of {} to find them in Google Cloud",
                user.username
            )));
        };
        self.modify_policy(&tenant.external_id, |p| without_member(p, platform_role, &m)).await
    }

    /// What Cloud Asset Inventory finds in the project, but for the project
    /// itself and its enabled services.
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        let base = format!(
            "{}/v1/projects/{}:searchAllResources?pageSize=500",
            self.config.asset_url,
            enc(&tenant.external_id)
        );
        let mut found = Vec::new();
        let mut url = base.clone();
        for _ in 0..MAX_PAGES {
            let (status, page) = self.call(Method::GET, &url, None).await?;
            if !status.is_success() {
                return Err(permanent(google_message(status, &page)));
            }
            for r in page["results"].as_array().into_iter().flatten() {
                let kind = r["assetType"].as_str().unwrap_or("resource");
                if BASELINE.contains(&kind) {
                    continue;
                }
                let name = r["displayName"].as_str().filter(|n| !n.is_empty()).or(r["name"].as_str()).unwrap_or("?");
                found.push(format!("{kind} {name}"));
            }
            match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => url = format!("{base}&pageToken={}", enc(token)),
                None => return Ok(found),
            }
        }
        Err(permanent(format!("the resources of project {} fill more than {MAX_PAGES} pages", tenant.external_id)))
    }

    /// Shut the project down (Google deletes it after 30 days); one being
    /// deleted already counts as done.
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let (status, op) = self.call(Method::DELETE, &self.project_url(&tenant.external_id), None).await?;
        if !status.is_success() {
            return Err(permanent(google_message(status, &op)));
        }
        match self.operation(op, CREATE_WAIT).await? {
            Some(_) => Ok(()),
            None => Err(retryable(format!("Google Cloud is still deleting project {}", tenant.external_id), None)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed set-up is a failed test
    use super::*;

    #[test]
    fn tn6_calls_are_paced_within_googles_quota() {
        let mut pace = Pace { full_at: None };
        let quota = (10.0, 10.0);
        assert_eq!(pace.reserve(quota, 10.0), Duration::ZERO, "a whole burst at once");
        let next = pace.reserve(quota, 10.0);
        assert!(next > Duration::from_millis(900) && next <= Duration::from_secs(1), "{next:?}");
        let after = pace.reserve(quota, 1.0);
        assert!(after > Duration::from_millis(1000) && after <= Duration::from_millis(1100), "{after:?}");
        assert_eq!(quota_of(&Method::POST, "https://x/v3/projects"), (1, 10.0));
        assert_eq!(quota_of(&Method::POST, "https://x/v3/projects/p:getIamPolicy"), (0, 1.0));
        assert_eq!(quota_of(&Method::POST, "https://x/v3/projects/p:setIamPolicy"), (1, 1.0));
    }

    #[test]
    fn tn6_project_ids_follow_googles_rules_and_stay_distinct() {
        let ok = |id: &str| {
            id.len() >= 6
                && id.len() <= 30
                && id.starts_with(|c: char| c.is_ascii_lowercase())
                && !id.ends_with('-')
                && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !id.contains("google")
                && !id.contains("ssl")
        };
        assert_eq!(project_id("team-a-web-1234abcd"), "team-a-web-1234abcd");
        let long = project_id("a-very-long-workspace-name-and-project-1234abcd");
        assert_eq!(long, "a-very-long-workspace-1234abcd");
        for name in ["9lives-web-1234abcd", "google-ssl-x-1234abcd", "ab", "x-------------------------------1234abcd"] {
            assert!(ok(&project_id(name)), "{name} → {}", project_id(name));
        }
        assert_ne!(
            project_id("a-very-long-workspace-name-and-project-1234abcd"),
            project_id("a-very-long-workspace-name-and-project-5678abcd")
        );
    }

    #[test]
    fn tn6_iam_changes_touch_only_the_member_and_role_asked_for() {
        let policy = json!({"version": 1, "etag": "BwE=", "auditConfigs": [{"service": "allServices"}], "bindings": [
            {"role": "roles/viewer", "members": ["user:Ann@example.org", "group:ops@example.org"]},
            {"role": "roles/editor", "members": ["user:bob@example.org"],
             "condition": {"title": "t", "expression": "true"}},
        ]});
        assert!(with_member(policy.clone(), "roles/viewer", "user:ann@example.org").is_none(), "case-insensitive");
        let p = with_member(policy.clone(), "roles/editor", "user:ann@example.org").unwrap();
        assert_eq!(p["bindings"].as_array().unwrap().len(), 3, "a conditional binding is not Canopy's");
        assert_eq!((&p["etag"], &p["auditConfigs"]), (&policy["etag"], &policy["auditConfigs"]));
        let p = without_member(policy.clone(), "roles/viewer", "user:ann@example.org").unwrap();
        assert_eq!(p["bindings"][0]["members"], json!(["group:ops@example.org"]));
        assert!(without_member(policy.clone(), "roles/editor", "user:bob@example.org").is_none());
        let p = without_member(p, "roles/viewer", "group:ops@example.org").unwrap();
        assert_eq!(p["bindings"].as_array().unwrap().len(), 1, "an empty binding goes");
    }
}
