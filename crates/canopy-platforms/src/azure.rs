//! Microsoft Azure through Azure Resource Manager and Microsoft Graph
//! (`docs/platforms/azure-api.md` has every call with its source): a tenant
//! is a subscription made through the subscription alias API under the
//! landing zone's billing scope and management group; people are the
//! directory's users, found in Graph by their e-mail address (as user
//! principal name, then as `mail`); roles are role assignments at the
//! subscription's scope, to role definitions looked up by name.
//!
//! Canopy signs in with a client credential (directory tenant, client id,
//! secret) at a configurable authority, and may be pointed at other ARM and
//! Graph endpoints (sovereign clouds, the tests' fake).
//!
//! An assignment Canopy makes carries the Canopy username in its
//! `description` (`canopy:NAME`) and a name derived from the subscription,
//! the person and the role, so a repeated grant after a lost answer makes
//! no second one; one made outside Canopy is reported as `principal:ID`.
//!
//! Throttling: a 429 goes to the engine with ARM's `Retry-After`; before
//! that, when ARM's `x-ms-ratelimit-remaining-*` says a budget is used up,
//! the adapter waits a second before its next call instead of drawing one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, enc, permanent, retryable};

const SUBSCRIPTION_API: &str = "2021-10-01";
const SUBSCRIPTIONS_GET_API: &str = "2022-12-01";
const AUTHORIZATION_API: &str = "2022-04-01";
const RESOURCES_API: &str = "2021-04-01";
/// What a Canopy-made assignment's description starts with.
const MARK: &str = "canopy:";
/// How an assignment made outside Canopy is named.
const FOREIGN: &str = "principal:";
/// The most pages of one list read.
const MAX_PAGES: usize = 100;
/// How long one call waits for a new subscription before the engine is told
/// to come back (the alias PUT is repeated then, and finds it).
const ALIAS_WAIT: Duration = Duration::from_secs(20);

/// Connection settings and credentials of an Azure platform.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// The directory (Entra ID tenant) Canopy signs in to.
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where new subscriptions are billed, unless the landing zone says.
    pub billing_scope: Option<String>,
    /// e.g. `https://login.microsoftonline.com`
    pub authority_url: String,
    /// e.g. `https://management.azure.com`
    pub arm_url: String,
    /// e.g. `https://graph.microsoft.com`
    pub graph_url: String,
    /// The token scopes of ARM and Graph (`https://management.azure.com/.default`).
    pub arm_scope: String,
    pub graph_scope: String,
    /// A CA certificate (PEM) to trust besides the system's.
    pub ca_cert: Option<String>,
}

impl AzureConfig {
    /// The public cloud's endpoints.
    pub fn public(tenant_id: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            billing_scope: None,
            authority_url: "https://login.microsoftonline.com".into(),
            arm_url: "https://management.azure.com".into(),
            graph_url: "https://graph.microsoft.com".into(),
            arm_scope: "https://management.azure.com/.default".into(),
            graph_scope: "https://graph.microsoft.com/.default".into(),
            ca_cert: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Arm,
    Graph,
}

pub struct Azure {
    http: reqwest::Client,
    config: AzureConfig,
    tokens: Mutex<BTreeMap<&'static str, (String, Instant)>>,
    /// Role definition ids by (subscription, role name), and directory
    /// object ids by e-mail address: they do not change while they exist.
    ids: std::sync::Mutex<BTreeMap<String, String>>,
    /// When ARM said no request of a kind remains (`x-ms-ratelimit-remaining-*`
    /// at 0), the next call waits until this instant rather than draw a 429.
    pause_until: std::sync::Mutex<Option<Instant>>,
}

/// How long the adapter waits when ARM's request budget is used up: ARM's
/// buckets refill 10 to 25 requests a second, so a second refills several.
const BUDGET_PAUSE: Duration = Duration::from_secs(1);

/// Whether ARM's answer says a request budget of the caller is used up.
fn budget_spent(headers: &reqwest::header::HeaderMap) -> bool {
    headers.iter().any(|(name, value)| {
        name.as_str().starts_with("x-ms-ratelimit-remaining-")
            && value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) == Some(0)
    })
}

/// Azure's own message from an error body (`{"error": {"code", "message"}}`).
fn azure_message(status: StatusCode, body: &Value) -> String {
    let e = &body["error"];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("Azure answered {status}: {c}: {m}"),
        (None, Some(m)) | (Some(m), None) => format!("Azure answered {status}: {m}"),
        (None, None) => format!("Azure answered {status}"),
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &Value) -> PlatformError {
    crate::failed(status, azure_message(status, body), retry_after)
}

/// An OData string literal: quotes doubled.
fn odata(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The GUID at the end of an id (`/subscriptions/.../roleDefinitions/GUID`),
/// lowercased: ARM answers role definition ids with and without the scope.
fn last_guid(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()
}

impl Azure {
    pub fn new(config: AzureConfig) -> Result<Self, PlatformError> {
        let http = crate::http_client(config.ca_cert.as_deref())?;
        let trim = |u: &str| u.trim_end_matches('/').to_owned();
        let config = AzureConfig {
            authority_url: trim(&config.authority_url),
            arm_url: trim(&config.arm_url),
            graph_url: trim(&config.graph_url),
            ..config
        };
        Ok(Self {
            http,
            config,
            tokens: Mutex::default(),
            ids: std::sync::Mutex::default(),
            pause_until: std::sync::Mutex::default(),
        })
    }

    fn remembered(&self, key: &str) -> Option<String> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn remember(&self, key: String, id: String) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).insert(key, id);
    }

    /// A token for `api`, fetched with the client credential when none is
    /// held or it ends within a minute.
    async fn token(&self, api: Api) -> Result<String, PlatformError> {
        let scope = match api {
            Api::Arm => self.config.arm_scope.as_str(),
            Api::Graph => self.config.graph_scope.as_str(),
        };
        let key = if api == Api::Arm { "arm" } else { "graph" };
        let mut tokens = self.tokens.lock().await;
        if let Some((t, until)) = tokens.get(key)
            && *until > Instant::now() + Duration::from_secs(60)
        {
            return Ok(t.clone());
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.config.authority_url, enc(&self.config.tenant_id));
        let form = [
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ];
        let (token, lifetime) = crate::oauth_token(&self.http, &url, &form, None, "the Azure sign-in").await?;
        tokens.insert(key, (token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// One call to ARM or Graph (`path` absolute, or relative to the API's
    /// URL); 404 and 409 are answers, throttling and server errors
    /// retryable with Azure's `Retry-After`; a refused token is fetched
    /// again once.
    async fn call(
        &self,
        api: Api,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), PlatformError> {
        let url = if path.starts_with("https://") || path.starts_with("http://") {
            path.to_owned()
        } else {
            let base = if api == Api::Arm { &self.config.arm_url } else { &self.config.graph_url };
            format!("{base}{path}")
        };
        for attempt in 0..2 {
            let pause = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(wait) = pause.and_then(|until| until.checked_duration_since(Instant::now())) {
                tokio::time::sleep(wait.min(BUDGET_PAUSE)).await;
            }
            let token = self.token(api).await?;
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res =
                req.send().await.map_err(|e| retryable(format!("Azure call {method} {path} failed: {e}"), None))?;
            let status = res.status();
            let retry_after = crate::retry_after_of(&res);
            *self.pause_until.lock().unwrap_or_else(|e| e.into_inner()) =
                budget_spent(res.headers()).then(|| Instant::now() + BUDGET_PAUSE);
            let answer = crate::json_answer(res)
                .await
                .map_err(|e| retryable(format!("Azure call {method} {path}: {e}"), None))?;
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.lock().await.clear();
                continue;
            }
            if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT {
                return Ok((status, answer));
            }
            return Err(classify(status, retry_after, &answer));
        }
        Err(permanent("Azure refused the platform's token"))
    }

    /// Every item of a list, following `nextLink` (at most [`MAX_PAGES`] pages).
    async fn list(&self, api: Api, path: &str) -> Result<Vec<Value>, PlatformError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        for _ in 0..MAX_PAGES {
            let Some(page) = next.take() else { return Ok(items) };
            let (status, body) = self.call(api, Method::GET, &page, None).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(permanent(azure_message(status, &body)));
            }
            items.extend(body["value"].as_array().into_iter().flatten().cloned());
            next = body["nextLink"].as_str().or(body["@odata.nextLink"].as_str()).map(str::to_owned);
        }
        Err(permanent(format!("Azure's list {path} has more than {MAX_PAGES} pages")))
    }

    /// The id (GUID) of the role definition `name` in the subscription.
    async fn role_id(&self, sub: &str, name: &str) -> Result<String, PlatformError> {
        let key = format!("role:{sub}:{name}");
        if let Some(id) = self.remembered(&key) {
            return Ok(id);
        }
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions?$filter={}&api-version={AUTHORIZATION_API}",
            enc(sub),
            enc(&format!("roleName eq {}", odata(name)))
        );
        let found = self.list(Api::Arm, &path).await?;
        let id = found
            .iter()
            .find(|d| d["properties"]["roleName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|d| d["name"].as_str().or(d["id"].as_str()))
            .map(last_guid)
            .ok_or_else(|| permanent(format!("Azure has no role {name:?} in subscription {sub}")))?;
        self.remember(key, id.clone());
        Ok(id)
    }

    /// The directory object id of the person with `email`: their user
    /// principal name, else their `mail`.
    async fn principal(&self, email: &str) -> Result<String, PlatformError> {
        let key = format!("user:{}", email.to_ascii_lowercase());
        if let Some(id) = self.remembered(&key) {
            return Ok(id);
        }
        let (status, user) =
            self.call(Api::Graph, Method::GET, &format!("/v1.0/users/{}?$select=id", enc(email)), None).await?;
        let id = match user["id"].as_str() {
            Some(id) if status.is_success() => id.to_owned(),
            _ => {
                let path = format!(
                    "/v1.0/users?$filter={}&$select=id,userPrincipalName,mail",
                    enc(&format!("mail eq {}", odata(email)))
                );
                let (_, found) = self.call(Api::Graph, Method::GET, &path, None).await?;
                found["value"][0]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| permanent(format!("the directory has no user with the e-mail address {email}")))?
            }
        };
        self.remember(key, id.clone());
        Ok(id)
    }

    /// The subscription's role assignments at its own scope.
    async fn assignments(&self, sub: &str) -> Result<Vec<Value>, PlatformError> {
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments?$filter={}&api-version={AUTHORIZATION_API}",
            enc(sub),
            enc("atScope()")
        );
        self.list(Api::Arm, &path).await
    }

    /// Refuse a subscription that is gone or cancelled: it is not an empty tenant.
    async fn require_subscription(&self, sub: &str) -> Result<(), PlatformError> {
        let path = format!("/subscriptions/{}?api-version={SUBSCRIPTIONS_GET_API}", enc(sub));
        let (status, body) = self.call(Api::Arm, Method::GET, &path, None).await?;
        let state = body["state"].as_str().unwrap_or("Enabled");
        if status == StatusCode::NOT_FOUND || matches!(state, "Disabled" | "Deleted") {
            return Err(permanent(format!("subscription {sub} does not exist or is cancelled (outside Canopy?)")));
        }
        Ok(())
    }

    /// The alias's subscription once it is made; `None` while Azure works.
    fn made(alias: &Value) -> Result<Option<String>, PlatformError> {
        let p = &alias["properties"];
        match p["provisioningState"].as_str() {
            Some(s) if s.eq_ignore_ascii_case("succeeded") => p["subscriptionId"]
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| permanent("Azure made the subscription but named none")),
            Some(s) if s.eq_ignore_ascii_case("failed") || s.eq_ignore_ascii_case("canceled") => {
                Err(permanent(format!("Azure could not make the subscription: {s}")))
            }
            _ => Ok(None),
        }
    }
}

/// An assignment's Canopy username (`canopy:NAME`), or `principal:ID`;
/// `None` for one to a group or an application (the platform's own service
/// principal among them, which made the subscription): Canopy gives roles
/// to people, and leaves the others alone.
fn holder(a: &Value) -> Option<String> {
    let p = &a["properties"];
    if p["principalType"].as_str().is_some_and(|t| t != "User") {
        return None;
    }
    match p["description"].as_str().and_then(|d| d.strip_prefix(MARK)) {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => p["principalId"].as_str().map(|id| format!("{FOREIGN}{id}")),
    }
}

impl Platform for Azure {
    /// A subscription per tenant, through an alias named after the tenant
    /// (a repeated call finds the same one), billed to the landing zone's
    /// `billing_scope` (else the platform's), in its `management_group`,
    /// of its `workload` (`Production` unless it says `DevTest`).
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let zone = &spec.landing_zone;
        let billing_scope = zone
            .get("billing_scope")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.config.billing_scope.clone())
            .ok_or_else(|| permanent("no billing scope: set billing_scope on the platform or its landing zone"))?;
        let workload = zone.get("workload").and_then(Value::as_str).unwrap_or("Production");
        let mut additional = json!({});
        if let Some(mg) = zone.get("management_group").and_then(Value::as_str) {
            additional["managementGroupId"] = json!(format!("/providers/Microsoft.Management/managementGroups/{mg}"));
        }
        let body = json!({"properties": {
            "displayName": spec.name, "workload": workload, "billingScope": billing_scope,
            "additionalProperties": additional,
        }});
        let path =
            format!("/providers/Microsoft.Subscription/aliases/{}?api-version={SUBSCRIPTION_API}", enc(&spec.name));
        // made before (a lost answer, a repeated call): the same alias
        let (status, existing) = self.call(Api::Arm, Method::GET, &path, None).await?;
        let mut alias = if status.is_success() {
            existing
        } else {
            let (status, created) = self.call(Api::Arm, Method::PUT, &path, Some(&body)).await?;
            if status == StatusCode::CONFLICT {
                return Err(permanent(azure_message(status, &created)));
            }
            created
        };
        let start = Instant::now();
        loop {
            if let Some(sub) = Self::made(&alias)? {
                return Ok(TenantRef { external_id: sub });
            }
            if start.elapsed() > ALIAS_WAIT {
                return Err(retryable(format!("Azure is still making subscription {:?}", spec.name), None));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (status, again) = self.call(Api::Arm, Method::GET, &path, None).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(retryable(
                    format!("the alias of subscription {:?} vanished; trying again", spec.name),
                    None,
                ));
            }
            alias = again;
        }
    }

    /// The assignments at the subscription's scope to the roles Canopy
    /// manages or asks about: by Canopy username for those it made.
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let sub = &tenant.external_id;
        self.require_subscription(sub).await?;
        let names: BTreeSet<&str> = scope
            .roles
            .iter()
            .map(String::as_str)
            .chain(scope.assignments.iter().map(|h| h.platform_role.as_str()))
            .collect();
        let mut roles = BTreeMap::new();
        for name in names {
            roles.insert(self.role_id(sub, name).await?, name.to_owned());
        }
        let mut held = BTreeSet::new();
        for a in self.assignments(sub).await? {
            let role = a["properties"]["roleDefinitionId"].as_str().map(last_guid);
            if let (Some(role), Some(username)) = (role.and_then(|r| roles.get(&r).cloned()), holder(&a)) {
                held.insert(Held { username, platform_role: role });
            }
        }
        Ok(held)
    }

    /// Assign the role to the person the directory knows by their e-mail
    /// address, under a name derived from the subscription, the person and
    /// the role: repeating it after a lost answer makes no second one. An
    /// assignment of the same made outside Canopy is replaced by Canopy's.
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let sub = &tenant.external_id;
        let role = self.role_id(sub, platform_role).await?;
        let principal = self.principal(&user.email).await?;
        let name = Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("canopy:{sub}:{principal}:{role}").as_bytes());
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={AUTHORIZATION_API}",
            enc(sub)
        );
        let body = json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal, "principalType": "User", "description": format!("{MARK}{}", user.username),
        }});
        for _ in 0..2 {
            let (status, answer) = self.call(Api::Arm, Method::PUT, &path, Some(&body)).await?;
            if status != StatusCode::CONFLICT {
                return Ok(());
            }
            if answer["error"]["code"] != "RoleAssignmentExists" {
                return Err(permanent(azure_message(status, &answer)));
            }
            // the same role for the same person under another name: replaced by Canopy's
            for a in self.assignments(sub).await? {
                let p = &a["properties"];
                let same = p["principalId"].as_str() == Some(principal.as_str())
                    && p["roleDefinitionId"].as_str().map(last_guid).as_deref() == Some(role.as_str());
                if same && let Some(id) = a["id"].as_str() {
                    let delete = format!("{id}?api-version={AUTHORIZATION_API}");
                    self.call(Api::Arm, Method::DELETE, &delete, None).await?;
                }
            }
        }
        Err(retryable(format!("the role {platform_role} of {} is neither given nor found", user.username), None))
    }

    /// Delete the assignments of the role to `username` (Canopy's) or to the
    /// principal it names (`principal:ID`); none is what was asked for.
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        let sub = &tenant.external_id;
        let role = self.role_id(sub, platform_role).await?;
        for a in self.assignments(sub).await? {
            let of_role = a["properties"]["roleDefinitionId"].as_str().map(last_guid).as_deref() == Some(role.as_str());
            if of_role
                && holder(&a).as_deref() == Some(username)
                && let Some(id) = a["id"].as_str()
            {
                let delete = format!("{id}?api-version={AUTHORIZATION_API}");
                self.call(Api::Arm, Method::DELETE, &delete, None).await?;
            }
        }
        Ok(())
    }

    /// The subscription's resource groups (every resource lives in one).
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        let path = format!("/subscriptions/{}/resourcegroups?api-version={RESOURCES_API}", enc(&tenant.external_id));
        let groups = self.list(Api::Arm, &path).await?;
        Ok(groups.iter().filter_map(|g| g["name"].as_str()).map(|n| format!("resource group {n}")).collect())
    }

    /// Cancel the subscription (Azure deletes it after its grace period);
    /// one gone or cancelled already counts as done.
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Subscription/cancel?api-version={SUBSCRIPTION_API}",
            enc(&tenant.external_id)
        );
        let (status, body) = self.call(Api::Arm, Method::POST, &path, None).await?;
        if status == StatusCode::CONFLICT {
            return Err(permanent(azure_message(status, &body)));
        }
        Ok(())
    }
}
