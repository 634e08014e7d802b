//! Kubernetes (and OpenShift, whose projects are namespaces) through the
//! Kubernetes API with kube-rs: a tenant is a namespace; a platform role is
//! a ClusterRole; an assignment is a RoleBinding in the namespace that binds
//! the ClusterRole to a `User` subject named after the person's username
//! (the name the cluster's authenticator, e.g. OIDC, gives them).
//!
//! Landing zone settings (TN2), all optional:
//! - `labels`: `{KEY: VALUE}` put on the namespace;
//! - `quota`: `{RESOURCE: QUANTITY}` (e.g. `{"pods": "20", "requests.cpu": "4"}`),
//!   the namespace's ResourceQuota `canopy-quota`;
//! - `cluster_roles`: `{NAME: [POLICY_RULE, ...]}`, ClusterRoles the landing
//!   zone provides, made or updated (server-side apply) when a tenant is
//!   created.
//!
//! Canopy's own objects are written with server-side apply under the field
//! manager `canopy`, so every call is idempotent and repairs what was changed.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec, permanent};

/// Connection settings and credentials of a Kubernetes or OpenShift platform.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// e.g. `https://api.cluster.example:6443`
    pub api_url: String,
    /// The cluster's CA certificate (PEM); the system's roots when none.
    pub ca_cert: Option<String>,
    /// A bearer token of a service account allowed to manage namespaces,
    /// quotas, ClusterRoles and RoleBindings.
    pub token: String,
    /// Describe namespaces the way OpenShift shows projects.
    pub openshift: bool,
}

pub struct Kubernetes {
    client: Client,
    api_url: String,
    openshift: bool,
}

const MANAGER: &str = "canopy";
const QUOTA: &str = "canopy-quota";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const RBAC: &str = "rbac.authorization.k8s.io";

impl Kubernetes {
    pub fn new(config: KubernetesConfig) -> Result<Self, PlatformError> {
        let url = config.api_url.trim_end_matches('/').to_owned();
        let uri = url.parse().map_err(|e| permanent(format!("the api_url {url:?} is not a URL: {e}")))?;
        let mut kube = kube::Config::new(uri);
        if let Some(pem) = &config.ca_cert {
            let certs: Result<Vec<Vec<u8>>, _> =
                CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.map(|c| c.to_vec())).collect();
            match certs {
                Ok(certs) if !certs.is_empty() => kube.root_cert = Some(certs),
                _ => return Err(permanent("the ca_cert is not a PEM certificate")),
            }
        }
        kube.auth_info.token = Some(config.token.into());
        kube.connect_timeout = Some(Duration::from_secs(10));
        kube.read_timeout = Some(Duration::from_secs(30));
        kube.write_timeout = Some(Duration::from_secs(30));
        let client =
            Client::try_from(kube).map_err(|e| permanent(format!("cannot set up a Kubernetes client: {e}")))?;
        Ok(Self { client, api_url: url, openshift: config.openshift })
    }

    fn classify(&self, call: &str, e: kube::Error) -> PlatformError {
        match e {
            kube::Error::Api(status) => {
                let message = format!("Kubernetes {call}: {} {}: {}", status.code, status.reason, status.message);
                if status.code == 429 || status.code >= 500 || status.is_conflict() {
                    let retry_after = status
                        .details
                        .as_ref()
                        .map(|d| d.retry_after_seconds)
                        .filter(|s| *s > 0)
                        .and_then(|s| crate::retry_after(&s.to_string()));
                    PlatformError::Retryable { message, retry_after }
                } else {
                    permanent(message)
                }
            }
            other => PlatformError::Retryable {
                message: format!("cannot reach Kubernetes at {} ({call}): {other}", self.api_url),
                retry_after: None,
            },
        }
    }

    fn namespaced<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn apply<K>(&self, api: &Api<K>, name: &str, object: &Value) -> Result<(), PlatformError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let params = PatchParams::apply(MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object)).await.map_err(|e| self.classify("apply", e))?;
        Ok(())
    }

    async fn list<K>(&self, api: &Api<K>, what: &str) -> Result<Vec<K>, PlatformError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| self.classify(&format!("list {what}"), e))?;
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            items.extend(page.items);
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(items),
            }
        }
    }

    /// The landing zone's ClusterRoles.
    async fn provide_cluster_roles(&self, landing_zone: &Map<String, Value>) -> Result<(), PlatformError> {
        let Some(roles) = landing_zone.get("cluster_roles") else { return Ok(()) };
        let Some(roles) = roles.as_object() else {
            return Err(permanent("landing zone setting cluster_roles must map names to lists of policy rules"));
        };
        let api: Api<ClusterRole> = Api::all(self.client.clone());
        for (name, rules) in roles {
            let role = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": {MANAGED_BY: MANAGER}},
                "rules": rules,
            });
            self.apply(&api, name, &role).await?;
        }
        Ok(())
    }
}

/// The RoleBinding Canopy makes for `username` holding `role`: a readable
/// prefix and a digest of both, so that any username and role fit a name.
fn binding_name(username: &str, role: &str) -> String {
    // the length first: no two (username, role) pairs spell the same input
    let digest = Sha256::digest(format!("{}:{username}{role}", username.len()).as_bytes());
    let hex = hex::encode(&digest[..8]);
    let readable: String =
        role.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    format!("canopy-{}-{hex}", readable.trim_matches('-'))
}

fn is_user(subject: &k8s_openapi::api::rbac::v1::Subject, username: Option<&str>) -> bool {
    subject.kind == "User" && username.is_none_or(|u| subject.name == u)
}

impl Platform for Kubernetes {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        self.provide_cluster_roles(&spec.landing_zone).await?;
        let mut labels = Map::new();
        if let Some(extra) = spec.landing_zone.get("labels") {
            let Some(extra) = extra.as_object() else {
                return Err(permanent("landing zone setting labels must map label keys to values"));
            };
            labels.extend(extra.clone());
        }
        labels.insert(MANAGED_BY.into(), json!(MANAGER));
        let mut annotations = Map::new();
        annotations.insert("canopy.io/description".into(), json!(spec.description));
        if self.openshift {
            annotations.insert("openshift.io/display-name".into(), json!(spec.name));
            annotations.insert("openshift.io/description".into(), json!(spec.description));
        }
        let namespace = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": spec.name, "labels": labels, "annotations": annotations},
        });
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        self.apply(&namespaces, &spec.name, &namespace).await?;
        if let Some(quota) = spec.landing_zone.get("quota") {
            let quota = json!({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": QUOTA, "labels": {MANAGED_BY: MANAGER}},
                "spec": {"hard": quota},
            });
            self.apply(&self.namespaced::<ResourceQuota>(&spec.name), QUOTA, &quota).await?;
        }
        Ok(TenantRef { external_id: spec.name.clone() })
    }

    async fn observe(&self, tenant: &TenantRef, _scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let ns = &tenant.external_id;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get_opt(ns).await.map_err(|e| self.classify("get namespace", e))? {
            None => return Err(permanent(format!("namespace {ns} does not exist (deleted outside Canopy?)"))),
            Some(n) if n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating") => {
                return Err(permanent(format!("namespace {ns} is being deleted")));
            }
            Some(_) => {}
        }
        let bindings = self.list(&self.namespaced::<RoleBinding>(ns), "rolebindings").await?;
        let mut held = BTreeSet::new();
        for b in bindings {
            if b.role_ref.kind != "ClusterRole" {
                continue; // namespaced Roles are not Canopy's
            }
            for s in b.subjects.iter().flatten().filter(|s| is_user(s, None)) {
                held.insert(Held { username: s.name.clone(), platform_role: b.role_ref.name.clone() });
            }
        }
        Ok(held)
    }

    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let name = binding_name(&user.username, platform_role);
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "labels": {MANAGED_BY: MANAGER}},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": platform_role},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user.username}],
        });
        self.apply(&self.namespaced::<RoleBinding>(&tenant.external_id), &name, &binding).await
    }

    /// Take the role from the user in every RoleBinding that gives it:
    /// Canopy's own and any made outside it.
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        let api = self.namespaced::<RoleBinding>(&tenant.external_id);
        for mut b in self.list(&api, "rolebindings").await? {
            if b.role_ref.kind != "ClusterRole" || b.role_ref.name != platform_role {
                continue;
            }
            let subjects = b.subjects.take().unwrap_or_default();
            if !subjects.iter().any(|s| is_user(s, Some(username))) {
                continue;
            }
            let rest: Vec<_> = subjects.into_iter().filter(|s| !is_user(s, Some(username))).collect();
            let name = b.name_any();
            if rest.is_empty() {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => return Err(self.classify("delete rolebinding", e)),
                }
            } else {
                // keeps the resourceVersion read: a change meanwhile is a conflict, retried
                b.subjects = Some(rest);
                api.replace(&name, &PostParams::default(), &b)
                    .await
                    .map_err(|e| self.classify("replace rolebinding", e))?;
            }
        }
        Ok(())
    }

    /// The workloads, services, volumes and configuration in the namespace,
    /// except what Kubernetes puts in every namespace itself.
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        let ns = &tenant.external_id;
        let mut found = Vec::new();
        let mut add = |kind: &str, names: Vec<String>| found.extend(names.into_iter().map(|n| format!("{kind} {n}")));
        add(
            "deployment",
            self.list(&self.namespaced::<Deployment>(ns), "deployments").await?.iter().map(|o| o.name_any()).collect(),
        );
        add(
            "statefulset",
            self.list(&self.namespaced::<StatefulSet>(ns), "statefulsets")
                .await?
                .iter()
                .map(|o| o.name_any())
                .collect(),
        );
        add("pod", self.list(&self.namespaced::<Pod>(ns), "pods").await?.iter().map(|o| o.name_any()).collect());
        add(
            "service",
            self.list(&self.namespaced::<Service>(ns), "services").await?.iter().map(|o| o.name_any()).collect(),
        );
        add(
            "persistentvolumeclaim",
            self.list(&self.namespaced::<PersistentVolumeClaim>(ns), "persistentvolumeclaims")
                .await?
                .iter()
                .map(|o| o.name_any())
                .collect(),
        );
        add(
            "configmap",
            self.list(&self.namespaced::<ConfigMap>(ns), "configmaps")
                .await?
                .iter()
                .map(|o| o.name_any())
                .filter(|n| n != "kube-root-ca.crt")
                .collect(),
        );
        add(
            "secret",
            self.list(&self.namespaced::<Secret>(ns), "secrets")
                .await?
                .iter()
                .filter(|s| s.type_.as_deref() != Some("kubernetes.io/service-account-token"))
                .map(|o| o.name_any())
                .collect(),
        );
        Ok(found)
    }

    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.delete(&tenant.external_id, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(self.classify("delete namespace", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tn6_rolebinding_names_are_valid_and_distinct() {
        let a = binding_name("alice", "system:aggregate-to-edit");
        assert!(a.starts_with("canopy-system-aggregate-to-edit-"), "{a}");
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(binding_name("alice", "edit"), binding_name("bob", "edit"));
        assert_ne!(binding_name("ab", "c"), binding_name("a", "bc"));
    }
}
