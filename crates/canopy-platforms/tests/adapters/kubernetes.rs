//! The Kubernetes adapter against kube-apiserver + etcd (`scripts/kube`),
//! with real RBAC. Without kube-controller-manager a deleted namespace stays
//! Terminating, so every test uses fresh namespace names.

use canopy_platforms::kubernetes::{Kubernetes, KubernetesConfig};
use canopy_platforms::{Platform, PlatformError, TenantRef};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::*;

struct Cluster {
    url: String,
    token: String,
    ca: String,
}

impl Cluster {
    fn adapter(&self, openshift: bool) -> Kubernetes {
        Kubernetes::new(KubernetesConfig {
            api_url: self.url.clone(),
            ca_cert: Some(self.ca.clone()),
            token: self.token.clone(),
            openshift,
        })
        .unwrap()
    }

    /// A plain client to look at what the adapter made.
    fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().unwrap());
        config.root_cert = Some(
            rustls::pki_types::pem::PemObject::pem_slice_iter(self.ca.as_bytes())
                .map(|c: Result<rustls::pki_types::CertificateDer<'static>, _>| c.unwrap().to_vec())
                .collect(),
        );
        config.auth_info.token = Some(self.token.clone().into());
        kube::Client::try_from(config).unwrap()
    }
}

fn cluster() -> Option<Cluster> {
    let [url, token, ca_path] =
        component(["CANOPY_TEST_KUBE_URL", "CANOPY_TEST_KUBE_TOKEN", "CANOPY_TEST_KUBE_CA"], "kube-apiserver")?;
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    Some(Cluster { url, token, ca })
}

#[tokio::test]
async fn tn6_kubernetes_namespace_per_tenant_holds_exactly_the_desired_rolebindings() {
    let Some(cluster) = cluster() else { return };
    let k8s = cluster.adapter(false);
    let edit = unique("canopy-edit");
    let landing_zone = json!({
        "labels": {"team": "a", "cost-centre": "42"},
        "quota": {"pods": "20", "requests.cpu": "4"},
        "cluster_roles": {edit.clone(): [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
    });
    let spec = spec(unique("team-a-web"), landing_zone);
    let tenant = tenant_holds_exactly_the_desired_roles(&k8s, &spec, [&edit, "view"], true).await;
    assert_eq!(tenant.external_id, spec.name, "the namespace is named after the tenant");

    // TN2: the landing zone's labels, quota and ClusterRole
    let client = cluster.client();
    let ns = Api::<Namespace>::all(client.clone()).get(&spec.name).await.unwrap();
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("canopy"));
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &spec.name).get("canopy-quota").await.unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["pods"].0, "20");
    let role = Api::<ClusterRole>::all(client.clone()).get(&edit).await.unwrap();
    assert_eq!(role.rules.unwrap()[0].verbs, ["get", "list"]);

    // DL2: what the namespace holds is listed before it is deleted
    assert!(k8s.find_resources(&tenant).await.unwrap().is_empty());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app-settings"}})).unwrap();
    Api::<ConfigMap>::namespaced(client, &spec.name).create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(k8s.find_resources(&tenant).await.unwrap(), ["configmap app-settings"]);

    // the namespace goes Terminating (and stays so without a controller
    // manager): Canopy reports it as deleted
    deleted_tenant_is_reported(&k8s, &tenant).await;
}

#[tokio::test]
async fn tn6_openshift_projects_are_namespaces_with_display_names() {
    let Some(cluster) = cluster() else { return };
    let shift = cluster.adapter(true);
    let spec = spec(unique("team-b-api"), json!({}));
    let tenant = shift.ensure_tenant(&spec).await.unwrap();
    let ns = Api::<Namespace>::all(cluster.client()).get(&tenant.external_id).await.unwrap();
    let annotations = ns.metadata.annotations.unwrap();
    assert_eq!(annotations.get("openshift.io/display-name"), Some(&spec.name));
    assert!(annotations.contains_key("openshift.io/description"));
}

#[tokio::test]
async fn tn6_kubernetes_failures_say_whether_a_retry_can_help() {
    let Some(cluster) = cluster() else { return };
    let stranger = Kubernetes::new(KubernetesConfig {
        api_url: cluster.url.clone(),
        ca_cert: Some(cluster.ca.clone()),
        token: "not-a-token".into(),
        openshift: false,
    })
    .unwrap();
    match stranger.ensure_tenant(&spec(unique("x"), json!({}))).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("401"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    match cluster.adapter(false).ensure_tenant(&spec(unique("x"), json!({"labels": ["not", "a", "map"]}))).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("labels"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    match cluster.adapter(false).observe(&TenantRef { external_id: unique("absent") }, &Default::default()).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("does not exist"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let down = Kubernetes::new(KubernetesConfig {
        api_url: format!("https://127.0.0.1:{}", closed_port()),
        ca_cert: Some(cluster.ca.clone()),
        token: cluster.token.clone(),
        openshift: false,
    })
    .unwrap();
    match down.observe(&TenantRef { external_id: "x".into() }, &Default::default()).await {
        Err(PlatformError::Retryable { .. }) => {}
        other => panic!("expected a retryable error, got {other:?}"),
    }
}
