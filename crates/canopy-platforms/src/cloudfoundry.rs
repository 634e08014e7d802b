//! Cloud Foundry through the Cloud Controller V3 API and UAA
//! (`docs/platforms/cloudfoundry-api.md` has every call with its source): a
//! tenant is a space in the platform's (or the landing zone's)
//! organization; people are CF users, named by their e-mail address as
//! username in the platform's UAA origin; roles are space roles
//! (`space_developer`, `space_manager`, `space_auditor`, `space_supporter`).
//!
//! Canopy signs in to UAA with the platform's user and password, as `cf
//! login` does (the `cf` client, the password grant), at the platform's
//! `uaa_url`, else at the address the Cloud Controller's root names. A person gets the organization's
//! `organization_user` role first (Cloud Foundry refuses space roles to
//! people outside the organization); one whose origin is not `uaa` and who
//! is missing is made there. Revocation takes the space role and leaves the
//! organization role: it opens no space.
//!
//! A space's deletion deletes everything in it, so [`Platform::find_resources`]
//! lists its apps, routes and service instances first (DL2). Deletions run
//! as Cloud Controller jobs, which are followed to their end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, enc, permanent, retryable};

/// The space roles a role mapping may name.
pub const SPACE_ROLES: [&str; 4] = ["space_auditor", "space_developer", "space_manager", "space_supporter"];
/// The most pages of one list read.
const MAX_PAGES: usize = 100;
/// Items per page asked for (Cloud Controller allows up to 5,000).
const PER_PAGE: u32 = 500;
/// How long one call follows a job before the engine is told to come back.
const JOB_WAIT: Duration = Duration::from_secs(20);

/// Connection settings and credentials of a Cloud Foundry platform.
#[derive(Debug, Clone)]
pub struct CloudFoundryConfig {
    /// e.g. `https://api.sys.example.org`
    pub api_url: String,
    /// The organization (name) spaces are made in, unless the landing zone names one.
    pub organization: String,
    /// The UAA origin of the people Canopy gives roles (`uaa`, `ldap`, an SSO provider's).
    pub origin: String,
    pub username: String,
    pub password: String,
    /// A CA certificate (PEM) to trust besides the system's.
    pub ca_cert: Option<String>,
    /// UAA's address, where the password goes; unless it is given, the one
    /// the Cloud Controller's root names (as `cf login` finds it).
    pub uaa_url: Option<String>,
}

pub struct CloudFoundry {
    http: reqwest::Client,
    config: CloudFoundryConfig,
    /// The UAA token endpoint, from the Cloud Controller's root.
    token_url: Mutex<Option<String>>,
    token: Mutex<Option<(String, Instant)>>,
    /// Organization guids by name: they do not change while they exist.
    orgs: std::sync::Mutex<BTreeMap<String, String>>,
}

/// The Cloud Controller's first error (`{"errors": [{"code", "title", "detail"}]}`).
fn cf_detail(body: &Value) -> &str {
    body["errors"][0]["detail"].as_str().unwrap_or("")
}

fn cf_message(status: StatusCode, body: &Value) -> String {
    let e = &body["errors"][0];
    match (e["title"].as_str(), e["detail"].as_str()) {
        (Some(t), Some(d)) => format!("Cloud Foundry answered {status}: {t}: {d}"),
        (None, Some(m)) | (Some(m), None) => format!("Cloud Foundry answered {status}: {m}"),
        (None, None) => format!("Cloud Foundry answered {status}"),
    }
}

/// How a holder Canopy does not know is named: `ORIGIN:USERNAME`.
fn foreign(origin: &str, username: &str) -> String {
    format!("{origin}:{username}")
}

impl CloudFoundry {
    pub fn new(config: CloudFoundryConfig) -> Result<Self, PlatformError> {
        // answers name further addresses (pages, jobs): none is followed off the platform
        let http = crate::http_client(config.ca_cert.as_deref())?;
        let config = CloudFoundryConfig { api_url: config.api_url.trim_end_matches('/').to_owned(), ..config };
        Ok(Self {
            http,
            config,
            token_url: Mutex::default(),
            token: Mutex::default(),
            orgs: std::sync::Mutex::default(),
        })
    }

    /// UAA's token endpoint, as the Cloud Controller's root names it.
    async fn token_url(&self) -> Result<String, PlatformError> {
        let mut held = self.token_url.lock().await;
        if let Some(url) = held.as_ref() {
            return Ok(url.clone());
        }
        if let Some(uaa) = &self.config.uaa_url {
            let url = format!("{}/oauth/token", uaa.trim_end_matches('/'));
            *held = Some(url.clone());
            return Ok(url);
        }
        let root = format!("{}/", self.config.api_url);
        let res = self
            .http
            .get(&root)
            .send()
            .await
            .map_err(|e| retryable(format!("cannot reach Cloud Foundry at {root}: {e}"), None))?;
        let status = res.status();
        let body = crate::json_answer(res).await.map_err(|e| retryable(format!("Cloud Foundry's root: {e}"), None))?;
        let links = &body["links"];
        let Some(base) = links["login"]["href"].as_str().or(links["uaa"]["href"].as_str()) else {
            let message = format!("{root} names no UAA (answered {status}): is it a Cloud Foundry API?");
            return Err(if status.is_server_error() { retryable(message, None) } else { permanent(message) });
        };
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(permanent(format!("Cloud Foundry names its UAA at {base:?}, not an http(s) address")));
        }
        let url = format!("{}/oauth/token", base.trim_end_matches('/'));
        *held = Some(url.clone());
        Ok(url)
    }

    /// A UAA token, fetched with the password grant of the `cf` client when
    /// none is held or it ends within a minute.
    async fn token(&self) -> Result<String, PlatformError> {
        let url = self.token_url().await?;
        let mut held = self.token.lock().await;
        if let Some((t, until)) = held.as_ref()
            && *until > Instant::now() + Duration::from_secs(60)
        {
            return Ok(t.clone());
        }
        let form = [
            ("grant_type", "password"),
            ("username", self.config.username.as_str()),
            ("password", self.config.password.as_str()),
        ];
        let (token, lifetime) =
            crate::oauth_token(&self.http, &url, &form, Some(("cf", "")), "Cloud Foundry's UAA").await?;
        *held = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// An address the Cloud Controller named (a page, a job): followed only
    /// when it is on the platform's own API, which alone gets the token.
    fn own(&self, href: &str) -> Result<String, PlatformError> {
        let base = &self.config.api_url;
        match href.strip_prefix(base.as_str()) {
            Some(rest) if rest.starts_with('/') => Ok(href.to_owned()),
            _ => Err(permanent(format!("Cloud Foundry named {href:?}, which is not on {base}: not followed"))),
        }
    }

    /// One call to the Cloud Controller (`path` under the API URL, or an
    /// address it named): 404 and 422 are answers, throttling and server
    /// errors retryable with its `Retry-After`; a refused token is fetched
    /// again once. The `Location` header comes back too (jobs).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, Option<String>), PlatformError> {
        let url = if path.starts_with('/') { format!("{}{path}", self.config.api_url) } else { self.own(path)? };
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req
                .send()
                .await
                .map_err(|e| retryable(format!("Cloud Foundry call {method} {path} failed: {e}"), None))?;
            let status = res.status();
            let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let retry_after = header("retry-after").as_deref().and_then(crate::retry_after);
            let location = header("location");
            let answer = crate::json_answer(res)
                .await
                .map_err(|e| retryable(format!("Cloud Foundry call {method} {path}: {e}"), None))?;
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY {
                return Ok((status, answer, location));
            }
            return Err(crate::failed(status, cf_message(status, &answer), retry_after));
        }
        Err(permanent("Cloud Foundry refused the platform's token"))
    }

    /// Every resource of a list, following `pagination.next` (at most
    /// [`MAX_PAGES`] pages), with the `included` users of every page.
    async fn list(&self, path: &str) -> Result<(Vec<Value>, Vec<Value>), PlatformError> {
        let (mut items, mut users) = (Vec::new(), Vec::new());
        let mut next = Some(path.to_owned());
        for _ in 0..MAX_PAGES {
            let Some(page) = next.take() else { return Ok((items, users)) };
            let (status, body, _) = self.call(Method::GET, &page, None).await?;
            if !status.is_success() {
                return Err(permanent(cf_message(status, &body)));
            }
            items.extend(body["resources"].as_array().into_iter().flatten().cloned());
            users.extend(body["included"]["users"].as_array().into_iter().flatten().cloned());
            next = body["pagination"]["next"]["href"].as_str().map(str::to_owned);
        }
        Err(permanent(format!("Cloud Foundry's list {path} has more than {MAX_PAGES} pages")))
    }

    /// The guid of the organization `name`.
    async fn org(&self, name: &str) -> Result<String, PlatformError> {
        if let Some(guid) = self.orgs.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(guid.clone());
        }
        let (found, _) = self.list(&format!("/v3/organizations?names={}", enc(name))).await?;
        let guid = found
            .first()
            .and_then(|o| o["guid"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| permanent(format!("Cloud Foundry has no organization {name:?} Canopy may see")))?;
        self.orgs.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), guid.clone());
        Ok(guid)
    }

    /// The space, or an error when it is gone (it is not an empty tenant).
    async fn space(&self, guid: &str) -> Result<Value, PlatformError> {
        let (status, space, _) = self.call(Method::GET, &format!("/v3/spaces/{}", enc(guid)), None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(permanent(format!("space {guid} does not exist (deleted outside Canopy?)")));
        }
        Ok(space)
    }

    /// Follow a job to its end (at most [`JOB_WAIT`]): `true` when it is
    /// complete, `false` while the Cloud Controller works.
    async fn job(&self, location: Option<String>) -> Result<bool, PlatformError> {
        let Some(url) = location else { return Ok(true) };
        let start = Instant::now();
        loop {
            let (status, job, _) = self.call(Method::GET, &url, None).await?;
            match job["state"].as_str() {
                Some("COMPLETE") => return Ok(true),
                Some("FAILED") => return Err(permanent(format!("Cloud Foundry's job failed: {}", cf_detail(&job)))),
                _ if status == StatusCode::NOT_FOUND => return Err(permanent("Cloud Foundry lost its job")),
                _ => {}
            }
            if start.elapsed() > JOB_WAIT {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The CF user guid of `email` in the platform's origin, if the Cloud
    /// Controller knows them.
    async fn user_guid(&self, email: &str) -> Result<Option<String>, PlatformError> {
        let path = format!("/v3/users?usernames={}&origins={}", enc(email), enc(&self.config.origin));
        let (users, _) = self.list(&path).await?;
        Ok(users.iter().find_map(|u| u["guid"].as_str()).map(str::to_owned))
    }

    /// Give `email` the organization's `organization_user` role, making the
    /// CF user (and, outside the `uaa` origin, the UAA user) when missing.
    async fn ensure_org_user(&self, org: &str, email: &str) -> Result<(), PlatformError> {
        let origin = &self.config.origin;
        let body = json!({"type": "organization_user", "relationships": {
            "user": {"data": {"username": email, "origin": origin}},
            "organization": {"data": {"guid": org}},
        }});
        for first in [true, false] {
            let (status, answer, _) = self.call(Method::POST, "/v3/roles", Some(&body)).await?;
            let detail = cf_detail(&answer);
            if status.is_success() || detail.contains("already has") {
                return Ok(());
            }
            if first && origin != "uaa" && detail.contains("No user exists") {
                let user = json!({"username": email, "origin": origin});
                let (status, answer, _) = self.call(Method::POST, "/v3/users", Some(&user)).await?;
                if status.is_success() || cf_detail(&answer).contains("already exists") {
                    continue;
                }
                return Err(permanent(cf_message(status, &answer)));
            }
            return Err(permanent(format!("{email} cannot join the organization: {}", cf_message(status, &answer))));
        }
        Err(permanent(format!("{email} cannot join the organization")))
    }

    /// The space's roles of the types asked for, with the username and
    /// origin of each holder (clients, which have none, are left out).
    async fn roles(
        &self,
        space: &str,
        types: &BTreeSet<&str>,
    ) -> Result<Vec<(String, String, String, String)>, PlatformError> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<&str> = types.iter().copied().collect();
        let path = format!(
            "/v3/roles?space_guids={}&types={}&include=user&per_page={PER_PAGE}",
            enc(space),
            enc(&types.join(","))
        );
        let (roles, users) = self.list(&path).await?;
        let people: BTreeMap<&str, (&str, &str)> = users
            .iter()
            .filter_map(|u| Some((u["guid"].as_str()?, (u["username"].as_str()?, u["origin"].as_str()?))))
            .collect();
        Ok(roles
            .iter()
            .filter_map(|r| {
                let user = r["relationships"]["user"]["data"]["guid"].as_str()?;
                let (username, origin) = people.get(user)?;
                Some((
                    r["guid"].as_str()?.to_owned(),
                    r["type"].as_str()?.to_owned(),
                    username.to_string(),
                    origin.to_string(),
                ))
            })
            .collect())
    }

    /// Delete what `path` names and follow the job (`what` names it in
    /// messages); gone already counts as done.
    async fn delete(&self, path: &str, what: &str) -> Result<(), PlatformError> {
        let (status, answer, location) = self.call(Method::DELETE, path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !status.is_success() {
            return Err(permanent(cf_message(status, &answer)));
        }
        match self.job(location).await? {
            true => Ok(()),
            false => Err(retryable(format!("Cloud Foundry is still deleting {what}"), None)),
        }
    }
}

impl Platform for CloudFoundry {
    /// A space per tenant, named after it (a repeated call finds the same
    /// one), in the landing zone's `organization` (else the platform's).
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let org_name =
            spec.landing_zone.get("organization").and_then(Value::as_str).unwrap_or(&self.config.organization);
        let org = self.org(org_name).await?;
        let find = format!("/v3/spaces?names={}&organization_guids={}", enc(&spec.name), enc(&org));
        for _ in 0..2 {
            let (found, _) = self.list(&find).await?;
            if let Some(guid) = found.first().and_then(|s| s["guid"].as_str()) {
                return Ok(TenantRef { external_id: guid.to_owned() });
            }
            let body = json!({"name": spec.name, "relationships": {"organization": {"data": {"guid": org}}}});
            let (status, space, _) = self.call(Method::POST, "/v3/spaces", Some(&body)).await?;
            if let Some(guid) = space["guid"].as_str().filter(|_| status.is_success()) {
                return Ok(TenantRef { external_id: guid.to_owned() });
            }
            // made meanwhile (a lost answer, a race): found by the next list
            if !cf_detail(&space).contains("must be unique") {
                return Err(permanent(cf_message(status, &space)));
            }
        }
        Err(retryable(format!("space {:?} is neither made nor found", spec.name), None))
    }

    /// The space roles Canopy manages or asks about: by Canopy username for
    /// the people it knows (by address, in its origin), else `ORIGIN:USERNAME`.
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        self.space(&tenant.external_id).await?;
        let types: BTreeSet<&str> = scope
            .roles
            .iter()
            .map(String::as_str)
            .chain(scope.assignments.iter().map(|h| h.platform_role.as_str()))
            .filter(|t| SPACE_ROLES.contains(t))
            .collect();
        let people: BTreeMap<String, &str> =
            scope.people.iter().map(|(u, e)| (e.to_ascii_lowercase(), u.as_str())).collect();
        let mut held = BTreeSet::new();
        for (_, kind, username, origin) in self.roles(&tenant.external_id, &types).await? {
            let known = (origin == self.config.origin).then(|| people.get(&username.to_ascii_lowercase())).flatten();
            let name = known.map_or_else(|| foreign(&origin, &username), |u| (*u).to_owned());
            held.insert(Held { username: name, platform_role: kind });
        }
        Ok(held)
    }

    /// The organization role, then the space role (nothing when held).
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        if !SPACE_ROLES.contains(&platform_role) {
            return Err(permanent(format!("{platform_role:?} is not a space role ({})", SPACE_ROLES.join(", "))));
        }
        if user.email.is_empty() {
            return Err(permanent(format!("{} has no e-mail address to name them in Cloud Foundry", user.username)));
        }
        let space = self.space(&tenant.external_id).await?;
        let Some(org) = space["relationships"]["organization"]["data"]["guid"].as_str() else {
            return Err(permanent(format!("space {} names no organization", tenant.external_id)));
        };
        self.ensure_org_user(org, &user.email).await?;
        let user_guid = self
            .user_guid(&user.email)
            .await?
            .ok_or_else(|| permanent(format!("Cloud Foundry does not list {} after giving them a role", user.email)))?;
        let body = json!({"type": platform_role, "relationships": {
            "user": {"data": {"guid": user_guid}},
            "space": {"data": {"guid": tenant.external_id}},
        }});
        let (status, answer, _) = self.call(Method::POST, "/v3/roles", Some(&body)).await?;
        if status.is_success() || cf_detail(&answer).contains("already has") {
            return Ok(());
        }
        Err(permanent(cf_message(status, &answer)))
    }

    /// Delete the space role of the person (by address in the platform's
    /// origin, or the `ORIGIN:USERNAME` observe named); none is what was asked for.
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let (origin, username) = match user.username.split_once(':') {
            Some((origin, name)) => (origin.to_owned(), name.to_owned()),
            None if !user.email.is_empty() => (self.config.origin.clone(), user.email.clone()),
            None => {
                return Err(permanent(format!(
                    "Canopy knows no e-mail address of {} to find them in Cloud Foundry",
                    user.username
                )));
            }
        };
        let types = BTreeSet::from([platform_role]);
        for (guid, _, name, o) in self.roles(&tenant.external_id, &types).await? {
            if o == origin && name.eq_ignore_ascii_case(&username) {
                self.delete(&format!("/v3/roles/{}", enc(&guid)), "a role").await?;
            }
        }
        Ok(())
    }

    /// The space's apps, routes and own service instances (not those
    /// shared into it, which its deletion only unshares).
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        let space = enc(&tenant.external_id);
        let mut found = Vec::new();
        let (apps, _) = self.list(&format!("/v3/apps?space_guids={space}&per_page={PER_PAGE}")).await?;
        found.extend(apps.iter().map(|a| format!("app {}", a["name"].as_str().unwrap_or("?"))));
        let (routes, _) = self.list(&format!("/v3/routes?space_guids={space}&per_page={PER_PAGE}")).await?;
        found.extend(routes.iter().map(|r| {
            let url = r["url"].as_str().or(r["host"].as_str()).unwrap_or("?");
            format!("route {url}")
        }));
        let (instances, _) =
            self.list(&format!("/v3/service_instances?space_guids={space}&per_page={PER_PAGE}")).await?;
        found.extend(
            instances
                .iter()
                .filter(|s| s["relationships"]["space"]["data"]["guid"].as_str() == Some(tenant.external_id.as_str()))
                .map(|s| format!("service instance {}", s["name"].as_str().unwrap_or("?"))),
        );
        Ok(found)
    }

    /// Delete the space and follow the job; one gone already counts as done.
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let path = format!("/v3/spaces/{}", enc(&tenant.external_id));
        self.delete(&path, &format!("space {}", tenant.external_id)).await
    }
}
