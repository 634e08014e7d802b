//! OpenStack through Keystone, the identity service (v3 API): a tenant is a
//! project in the platform's domain; users are accounts in that domain;
//! roles are Keystone roles assigned on the project.
//!
//! Canopy signs in as the platform's service user (in the `Default` domain)
//! with a system-scoped token, which Keystone's bootstrap admin holds.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, permanent, retryable};

/// Connection settings and credentials of a Keystone platform.
#[derive(Debug, Clone)]
pub struct KeystoneConfig {
    /// e.g. `http://keystone.example:5000/v3`
    pub auth_url: String,
    /// The domain that holds the tenants' projects and the users.
    pub domain: String,
    pub username: String,
    pub password: String,
}

pub struct Keystone {
    http: reqwest::Client,
    config: KeystoneConfig,
    token: Mutex<Option<String>>,
    /// Ids of domains and roles by name (`domain:NAME`, `role:NAME`): they
    /// do not change while they exist, and every grant needs them.
    ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Keystone's own message from an error body, else the status.
fn keystone_message(status: StatusCode, body: &Value) -> String {
    match body["error"]["message"].as_str() {
        Some(m) => format!("Keystone answered {status}: {m}"),
        None => format!("Keystone answered {status}"),
    }
}

fn id_of(body: &Value, list: &str) -> Option<String> {
    body[list].as_array()?.first()?["id"].as_str().map(str::to_owned)
}

impl Keystone {
    pub fn new(config: KeystoneConfig) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| permanent(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config: KeystoneConfig { auth_url: config.auth_url.trim_end_matches('/').to_owned(), ..config },
            token: Mutex::new(None),
            ids: std::sync::Mutex::default(),
        })
    }

    async fn sign_in(&self) -> Result<String, PlatformError> {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.config.username, "domain": {"name": "Default"}, "password": self.config.password}}},
            "scope": {"system": {"all": true}}
        }});
        let res = self
            .http
            .post(format!("{}/auth/tokens", self.config.auth_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| retryable(format!("cannot reach Keystone at {}: {e}", self.config.auth_url), None))?;
        let status = res.status();
        let token = res.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if status == StatusCode::CREATED
            && let Some(token) = token
        {
            return Ok(token);
        }
        let body = crate::json_answer(res).await.unwrap_or(Value::Null);
        Err(classify(status, None, &body))
    }

    /// One API call with the service token (signing in again once when it expired).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), PlatformError> {
        for attempt in 0..2 {
            let token = {
                let mut cached = self.token.lock().await;
                match cached.as_ref() {
                    Some(t) => t.clone(),
                    None => {
                        let t = self.sign_in().await?;
                        *cached = Some(t.clone());
                        t
                    }
                }
            };
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.config.auth_url))
                .header("X-Auth-Token", token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res =
                req.send().await.map_err(|e| retryable(format!("Keystone call {method} {path} failed: {e}"), None))?;
            let status = res.status();
            let retry_after =
                res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(crate::retry_after);
            let body: Value = if status == StatusCode::NO_CONTENT {
                Value::Null
            } else {
                crate::json_answer(res)
                    .await
                    .map_err(|e| retryable(format!("Keystone call {method} {path}: {e}"), None))?
            };
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT {
                return Ok((status, body));
            }
            return Err(classify(status, retry_after, &body));
        }
        Err(permanent("Keystone refused the service account's token"))
    }

    async fn domain_id(&self) -> Result<String, PlatformError> {
        self.domain_id_of(&self.config.domain).await
    }

    async fn domain_id_of(&self, name: &str) -> Result<String, PlatformError> {
        self.cached_id("domains", name).await
    }

    async fn role_id(&self, role: &str) -> Result<String, PlatformError> {
        self.cached_id("roles", role).await
    }

    /// The id of a domain or role by name, asked once and then remembered.
    async fn cached_id(&self, list: &str, name: &str) -> Result<String, PlatformError> {
        let key = format!("{list}:{name}");
        if let Some(id) = self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(id.clone());
        }
        let (_, body) = self.call(Method::GET, &format!("/{list}?name={}", crate::enc(name)), None).await?;
        let kind = list.trim_end_matches('s');
        let id = id_of(&body, list).ok_or_else(|| permanent(format!("Keystone has no {kind} {name:?}")))?;
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).insert(key, id.clone());
        Ok(id)
    }

    /// A tenant's project, or a permanent error if it is gone.
    async fn project_exists(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let project = format!("/projects/{}", crate::enc(&tenant.external_id));
        let (status, _) = self.call(Method::GET, &project, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(permanent(format!("project {} does not exist (deleted outside Canopy?)", tenant.external_id)));
        }
        Ok(())
    }

    /// Forget the remembered ids (a 404 may mean one was deleted and made again).
    fn forget_ids(&self) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn user_id(&self, domain_id: &str, username: &str) -> Result<Option<String>, PlatformError> {
        let path = format!("/users?name={}&domain_id={}", crate::enc(username), crate::enc(domain_id));
        let (_, body) = self.call(Method::GET, &path, None).await?;
        Ok(id_of(&body, "users"))
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &Value) -> PlatformError {
    let message = keystone_message(status, body);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        retryable(message, retry_after)
    } else {
        permanent(message)
    }
}

impl Platform for Keystone {
    /// A project per tenant, in the landing zone's `domain` when it names
    /// one, else in the platform's domain (TN2).
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let domain_id = match spec.landing_zone.get("domain").and_then(Value::as_str) {
            Some(name) => self.domain_id_of(name).await?,
            None => self.domain_id().await?,
        };
        // made first and looked for only if it exists: a tenant is ensured
        // when it is new, one call instead of two
        let find = format!("/projects?name={}&domain_id={}", crate::enc(&spec.name), crate::enc(&domain_id));
        let body = json!({"project": {"name": spec.name, "domain_id": domain_id, "description": spec.description, "enabled": true}});
        for _ in 0..2 {
            let (status, created) = self.call(Method::POST, "/projects", Some(&body)).await?;
            if status == StatusCode::CREATED
                && let Some(id) = created["project"]["id"].as_str()
            {
                return Ok(TenantRef { external_id: id.to_owned() });
            }
            if status == StatusCode::NOT_FOUND {
                // the domain, by a remembered id that is gone: ask again next time
                self.forget_ids();
                return Err(retryable(keystone_message(status, &created), None));
            }
            // 409: made by an earlier run whose answer was lost, or at the
            // same moment by another call; find it
            let (_, found) = self.call(Method::GET, &find, None).await?;
            if let Some(id) = id_of(&found, "projects") {
                return Ok(TenantRef { external_id: id });
            }
        }
        Err(retryable(format!("project {:?} is neither found nor created", spec.name), None))
    }

    async fn observe(&self, tenant: &TenantRef, _scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let path = format!("/role_assignments?scope.project.id={}&include_names=true", crate::enc(&tenant.external_id));
        let (_, body) = self.call(Method::GET, &path, None).await?;
        let assignments = body["role_assignments"].as_array().map(Vec::as_slice).unwrap_or_default();
        if assignments.is_empty() {
            // Keystone lists no assignments for a project that is gone rather
            // than refusing (deleting a project deletes its assignments): ask
            // for the project itself, so that a tenant deleted outside Canopy
            // is reported, not mistaken for an empty one.
            self.project_exists(tenant).await?;
        }
        let mut held = BTreeSet::new();
        for a in assignments {
            // group assignments are not Canopy's
            if let (Some(user), Some(role)) = (a["user"]["name"].as_str(), a["role"]["name"].as_str()) {
                held.insert(Held { username: user.to_owned(), platform_role: role.to_owned() });
            }
        }
        Ok(held)
    }

    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let domain_id = self.domain_id().await?;
        let role_id = self.role_id(platform_role).await?;
        // looked up by name each time, never remembered: a user renamed
        // outside Canopy keeps its id, and a remembered id would give the
        // role to whoever holds that name now
        let user_id = match self.user_id(&domain_id, &user.username).await? {
            Some(id) => id,
            None => {
                let body = json!({"user": {"name": user.username, "domain_id": domain_id, "email": user.email, "enabled": true}});
                let (status, created) = self.call(Method::POST, "/users", Some(&body)).await?;
                match created["user"]["id"].as_str() {
                    Some(id) if status == StatusCode::CREATED => id.to_owned(),
                    // 409: created at the same moment by another call
                    _ => self.user_id(&domain_id, &user.username).await?.ok_or_else(|| {
                        retryable(format!("user {:?} is neither found nor created", user.username), None)
                    })?,
                }
            }
        };
        let path = format!("/projects/{}/users/{user_id}/roles/{role_id}", crate::enc(&tenant.external_id));
        let (status, body) = self.call(Method::PUT, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            // the project itself gone (its assignments may outlive it for a
            // moment, so observe's list did not say): nothing to retry
            self.project_exists(tenant).await?;
            self.forget_ids();
            return Err(retryable(keystone_message(status, &body), None));
        }
        Ok(())
    }

    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        let domain_id = self.domain_id().await?;
        // looked up each time, never remembered (see `grant`): with the id of
        // a user deleted and made again outside Canopy, the DELETE below
        // would answer 404, taken for "not held", and leave the new user's role
        let Some(user_id) = self.user_id(&domain_id, username).await? else { return Ok(()) };
        let role_id = self.role_id(platform_role).await?;
        let path = format!("/projects/{}/users/{user_id}/roles/{role_id}", crate::enc(&tenant.external_id));
        // 404: not held (any more): what was asked for
        self.call(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// Keystone knows the projects nested in the tenant's project; compute
    /// and storage live in other OpenStack services that Canopy does not reach.
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        let path = format!("/projects?parent_id={}", crate::enc(&tenant.external_id));
        let (_, body) = self.call(Method::GET, &path, None).await?;
        Ok(body["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .map(|name| format!("project {name}"))
            .collect())
    }

    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        self.call(Method::DELETE, &format!("/projects/{}", crate::enc(&tenant.external_id)), None).await.map(|_| ())
    }
}
