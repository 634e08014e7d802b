//! Open Service Broker API (v2.17): a tenant is a service instance of the
//! platform's service and plan; an assignment is a service binding whose
//! parameters name the person and the platform role. Instances and bindings
//! get ids derived from the tenant's name and from (instance, username,
//! role), so every provision and bind can be repeated safely, and the
//! asynchronous operations a broker answers with 202 are polled through
//! `last_operation` until they settle.
//!
//! The OSB API has no way to list an instance's bindings: Canopy asks the
//! broker (`GET` on a binding, which needs `bindings_retrievable`) about each
//! binding it wants or made, so bindings made outside Canopy are not seen.
//! The landing zone's settings are the instance's provision `parameters`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, permanent, retryable};

/// Connection settings and credentials of a service broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_url: String,
    /// The service and plan every tenant is an instance of.
    pub service_id: String,
    pub plan_id: String,
    /// HTTP basic authentication, as the OSB API prescribes.
    pub username: String,
    pub password: String,
}

pub struct ServiceBroker {
    http: reqwest::Client,
    config: BrokerConfig,
}

const API_VERSION: &str = "2.17";
/// How long to follow an asynchronous operation within one run; after that
/// the run fails retryably and the next one asks again.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
const POLL_EVERY: Duration = Duration::from_millis(500);
/// The namespace of Canopy's instance and binding ids (UUID v5).
const IDS: Uuid = Uuid::from_u128(0x6d1f_4b8e_9a52_4c1d_8a0e_3f5b_2c7d_9e10);

/// The service instance id of the tenant named `name`.
pub fn instance_id(name: &str) -> String {
    Uuid::new_v5(&IDS, format!("instance:{name}").as_bytes()).to_string()
}

/// The binding id that gives `username` the role `platform_role` in an instance.
pub fn binding_id(instance: &str, username: &str, platform_role: &str) -> String {
    let key = format!("binding:{instance}:{}:{username}:{platform_role}", username.len());
    Uuid::new_v5(&IDS, key.as_bytes()).to_string()
}

/// Where an asynchronous operation's state is read.
enum Operation<'a> {
    Instance,
    Binding(&'a str),
}

impl ServiceBroker {
    pub fn new(config: BrokerConfig) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| permanent(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config: BrokerConfig { broker_url: config.broker_url.trim_end_matches('/').to_owned(), ..config },
        })
    }

    /// One call: the status, the JSON body (null when none) and Retry-After.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, Option<Duration>), PlatformError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.config.broker_url))
            .basic_auth(&self.config.username, Some(&self.config.password))
            .header("X-Broker-API-Version", API_VERSION)
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| {
            retryable(format!("cannot reach the service broker at {}: {e}", self.config.broker_url), None)
        })?;
        let status = res.status();
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(crate::retry_after);
        let body = crate::json_answer(res)
            .await
            .map_err(|e| retryable(format!("the service broker at {}: {e}", self.config.broker_url), None))?;
        Ok((status, body, retry_after))
    }

    fn failure(&self, call: &str, status: StatusCode, body: &Value, retry_after: Option<Duration>) -> PlatformError {
        let mut message = format!("service broker {call}: {status}");
        for key in ["error", "description"] {
            if let Some(part) = body[key].as_str() {
                message.push_str(": ");
                message.push_str(part);
            }
        }
        // ConcurrencyError: another operation on the instance is under way
        if status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || body["error"].as_str() == Some("ConcurrencyError")
        {
            retryable(message, retry_after)
        } else {
            permanent(message)
        }
    }

    fn ids(&self) -> [(&str, &str); 2] {
        [("service_id", self.config.service_id.as_str()), ("plan_id", self.config.plan_id.as_str())]
    }

    /// Follow an asynchronous operation until it succeeded (`gone_is_done`:
    /// a deletion, where 410 Gone means finished).
    async fn settle(
        &self,
        instance: &str,
        of: Operation<'_>,
        operation: Option<&str>,
        gone_is_done: bool,
    ) -> Result<(), PlatformError> {
        let path = match of {
            Operation::Instance => format!("/v2/service_instances/{instance}/last_operation"),
            Operation::Binding(b) => format!("/v2/service_instances/{instance}/service_bindings/{b}/last_operation"),
        };
        let mut query: Vec<(&str, &str)> = self.ids().to_vec();
        if let Some(op) = operation {
            query.push(("operation", op));
        }
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        loop {
            let (status, body, retry_after) = self.call(Method::GET, &path, &query, None).await?;
            if status == StatusCode::GONE && gone_is_done {
                return Ok(());
            }
            if !status.is_success() {
                return Err(self.failure("last_operation", status, &body, retry_after));
            }
            match body["state"].as_str() {
                Some("succeeded") => return Ok(()),
                Some("failed") => {
                    let why = body["description"].as_str().unwrap_or("no description");
                    return Err(permanent(format!("the service broker's operation failed: {why}")));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(retryable("the service broker's operation is still in progress", None));
                }
                // never past the deadline, whatever the broker asks
                _ => {
                    let wait = retry_after.unwrap_or(POLL_EVERY).clamp(POLL_EVERY, SETTLE_WITHIN);
                    tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(deadline)).await
                }
            }
        }
    }

    /// PUT a binding and follow it until it is made; false when the broker
    /// holds one with this id but other parameters (409).
    async fn bind(&self, instance: &str, b: &str, body: &Value) -> Result<bool, PlatformError> {
        let path = format!("/v2/service_instances/{instance}/service_bindings/{b}");
        let (status, answer, retry_after) =
            self.call(Method::PUT, &path, &[("accepts_incomplete", "true")], Some(body)).await?;
        match status {
            StatusCode::OK | StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                self.settle(instance, Operation::Binding(b), answer["operation"].as_str(), false).await.map(|()| true)
            }
            StatusCode::CONFLICT => Ok(false),
            _ => Err(self.failure("bind", status, &answer, retry_after)),
        }
    }

    fn context(&self, name: &str) -> Value {
        json!({"platform": "canopy", "instance_name": name})
    }
}

impl Platform for ServiceBroker {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let id = instance_id(&spec.name);
        let body = json!({
            "service_id": self.config.service_id,
            "plan_id": self.config.plan_id,
            "context": self.context(&spec.name),
            "parameters": spec.landing_zone,
        });
        let path = format!("/v2/service_instances/{id}");
        let (status, answer, retry_after) =
            self.call(Method::PUT, &path, &[("accepts_incomplete", "true")], Some(&body)).await?;
        match status {
            StatusCode::OK | StatusCode::CREATED => {}
            StatusCode::ACCEPTED => self.settle(&id, Operation::Instance, answer["operation"].as_str(), false).await?,
            _ => return Err(self.failure("provision", status, &answer, retry_after)),
        }
        Ok(TenantRef { external_id: id })
    }

    /// The instance must still exist; then each binding Canopy wants or made
    /// is asked about by its id.
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let instance = &tenant.external_id;
        let (status, body, retry_after) =
            self.call(Method::GET, &format!("/v2/service_instances/{instance}"), &[], None).await?;
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(permanent(format!(
                "service instance {instance} does not exist (deprovisioned outside Canopy?)"
            )));
        }
        if !status.is_success() {
            return Err(self.failure("fetch instance", status, &body, retry_after));
        }
        let mut held = BTreeSet::new();
        for h in &scope.assignments {
            let b = binding_id(instance, &h.username, &h.platform_role);
            let path = format!("/v2/service_instances/{instance}/service_bindings/{b}");
            let (status, body, retry_after) = self.call(Method::GET, &path, &[], None).await?;
            match status {
                s if s.is_success() => {
                    held.insert(h.clone());
                }
                StatusCode::NOT_FOUND | StatusCode::GONE => {}
                // 422 ConcurrencyError: still being made or removed
                _ => return Err(self.failure("fetch binding", status, &body, retry_after)),
            }
        }
        Ok(held)
    }

    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let instance = &tenant.external_id;
        let b = binding_id(instance, &user.username, platform_role);
        let body = json!({
            "service_id": self.config.service_id,
            "plan_id": self.config.plan_id,
            "context": self.context(instance),
            "parameters": {"username": user.username, "email": user.email, "role": platform_role},
        });
        if self.bind(instance, &b, &body).await? {
            return Ok(());
        }
        // a binding with this id but other parameters (the e-mail address
        // changed since): replace it, so the broker sees the person as now
        self.revoke(tenant, user, platform_role).await?;
        if self.bind(instance, &b, &body).await? {
            return Ok(());
        }
        Err(permanent("service broker bind: 409 Conflict: it still holds a different binding with this id"))
    }

    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        let instance = &tenant.external_id;
        let b = binding_id(instance, username, platform_role);
        let path = format!("/v2/service_instances/{instance}/service_bindings/{b}");
        let mut query = self.ids().to_vec();
        query.push(("accepts_incomplete", "true"));
        let (status, answer, retry_after) = self.call(Method::DELETE, &path, &query, None).await?;
        match status {
            // 410: not bound (any more): what was asked for
            StatusCode::OK | StatusCode::GONE => Ok(()),
            StatusCode::ACCEPTED => {
                self.settle(instance, Operation::Binding(&b), answer["operation"].as_str(), true).await
            }
            _ => Err(self.failure("unbind", status, &answer, retry_after)),
        }
    }

    /// A service instance is itself what the broker made: deprovisioning it
    /// removes what it holds, and the OSB API lists nothing inside it.
    async fn find_resources(&self, _tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        Ok(Vec::new())
    }

    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let instance = &tenant.external_id;
        let mut query = self.ids().to_vec();
        query.push(("accepts_incomplete", "true"));
        let path = format!("/v2/service_instances/{instance}");
        let (status, answer, retry_after) = self.call(Method::DELETE, &path, &query, None).await?;
        match status {
            StatusCode::OK | StatusCode::GONE => Ok(()),
            StatusCode::ACCEPTED => {
                self.settle(instance, Operation::Instance, answer["operation"].as_str(), true).await
            }
            _ => Err(self.failure("deprovision", status, &answer, retry_after)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tn6_instance_and_binding_ids_are_stable_and_distinct() {
        assert_eq!(instance_id("team-a-web-1"), instance_id("team-a-web-1"));
        assert_ne!(instance_id("team-a-web-1"), instance_id("team-a-web-2"));
        let i = instance_id("x");
        assert_eq!(binding_id(&i, "alice", "admin"), binding_id(&i, "alice", "admin"));
        assert_ne!(binding_id(&i, "alice", "admin"), binding_id(&i, "alice", "reader"));
        assert_ne!(binding_id(&i, "ab", "c"), binding_id(&i, "a", "bc"));
    }
}
