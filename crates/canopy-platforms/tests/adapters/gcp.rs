//! TN6 for Google Cloud: no emulator of Resource Manager, IAM or Cloud
//! Asset installs from a registry, so the tests run against a stateful fake of their published API (`scripts/gcp_fake.py`,
//! `docs/platforms/gcp-api.md`). This test holds the fake to what Google's
//! own Python clients accept (`scripts/gcp_fidelity.py`: google-auth,
//! google-cloud-resource-manager, google-cloud-asset over REST): the sign-in
//! with a service-account key, a project and its long-running operation,
//! IAM's read-modify-write with etags and its 409 ABORTED, asset search,
//! deletion, throttling, and a lost answer.

use canopy_platforms::gcp::{Gcp, GcpConfig, ServiceAccountKey};
use canopy_platforms::{Platform, PlatformError, Scope};
use serde_json::{Value, json};

use crate::{component, person};

/// The adapter tests share one fake and inject faults into it: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn tn6_the_google_cloud_fake_is_what_googles_own_clients_talk_to() {
    // the shared fake's presence says whether the fakes can start here
    if component(["CANOPY_TEST_GCP_FIDELITY"], "Google Cloud fake").is_none() {
        return;
    }
    crate::own_fake_is_faithful("gcp", 4, "Google's clients").await;
}

/// The adapter signed in to the fake with the key it made, the fake's
/// address, and a client for its control API (`/_fake/...`).
fn gcp() -> Option<(Gcp, String, reqwest::Client)> {
    let [url, ca, key, folder] = component(
        ["CANOPY_TEST_GCP_URL", "CANOPY_TEST_GCP_CA", "CANOPY_TEST_GCP_KEY", "CANOPY_TEST_GCP_FOLDER"],
        "Google Cloud fake",
    )?;
    let pem = std::fs::read_to_string(&ca).unwrap();
    let key: ServiceAccountKey = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let config = GcpConfig {
        crm_url: url.clone(),
        asset_url: url.clone(),
        ca_cert: Some(pem.clone()),
        ..GcpConfig::public(key, &folder)
    };
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Some((Gcp::new(config).unwrap(), url, control))
}

async fn fake(control: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let res = control.post(format!("{url}/_fake/{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "/_fake/{path}: {}", res.status());
    res.json().await.unwrap_or_default()
}

async fn project_state(control: &reqwest::Client, url: &str, id: &str) -> Value {
    let state: Value = control.get(format!("{url}/_fake/state")).send().await.unwrap().json().await.unwrap();
    state["projects"].as_array().unwrap().iter().find(|p| p["projectId"] == id).cloned().unwrap_or_default()
}

#[tokio::test]
async fn tn6_google_cloud_project_per_tenant_holds_exactly_the_desired_roles() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((gcp, url, control)) = gcp() else { return };
    fake(&control, &url, "folders", json!({"name": "folders/42", "displayName": "team zone"})).await;
    let spec = crate::spec(crate::unique("team-a-web"), json!({"folder": "folders/42"}));
    let tenant =
        crate::tenant_holds_exactly_the_desired_roles(&gcp, &spec, ["roles/viewer", "roles/editor"], true).await;
    let project = project_state(&control, &url, &tenant.external_id).await;
    assert_eq!(project["parent"], "folders/42", "the landing zone's folder: {project}");
    assert_eq!(project["labels"]["managed-by"], "canopy");
    // the platform's own service account (the project's owner) is left alone
    let policy = project["iamPolicy"].to_string();
    assert!(policy.contains("serviceAccount:") && policy.contains("roles/owner"), "{policy}");

    // resources left in the project are named before a deletion (DL2);
    // the project itself and its services are not counted
    let bucket = json!({"project": tenant.external_id, "assetType": "storage.googleapis.com/Bucket",
        "name": "//storage.googleapis.com/app-data", "displayName": "app-data"});
    fake(&control, &url, "resources", bucket.clone()).await;
    assert_eq!(gcp.find_resources(&tenant).await.unwrap(), vec!["storage.googleapis.com/Bucket app-data".to_owned()]);
    let mut gone = bucket;
    gone["remove"] = json!(true);
    fake(&control, &url, "resources", gone).await;
    assert_eq!(gcp.find_resources(&tenant).await.unwrap(), Vec::<String>::new());
    crate::deleted_tenant_is_reported(&gcp, &tenant).await;
    assert_eq!(project_state(&control, &url, &tenant.external_id).await["state"], "DELETE_REQUESTED");
}

/// Throttling is retryable with Google's `Retry-After`, and waited out
/// with a growing pause where Google sends none (its quotas); an answer lost
/// after Google made the project or changed the policy leaves no
/// duplicate when the call is repeated; people granted at the same moment
/// all keep their role (the etag makes a lost update a retry, never an
/// overwrite); a project ID someone else holds is a clear error.
#[tokio::test]
async fn tn6_google_cloud_failures_are_classified_and_concurrent_changes_are_kept() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((gcp, url, control)) = gcp() else { return };
    let spec = crate::spec(crate::unique("team-b"), json!({}));
    // every fault names this test's project: tests beside it may use the fake too
    let id = canopy_platforms::gcp::project_id(&spec.name);
    let lost = json!({"path_contains": "/v3/projects", "method": "POST", "body_contains": id, "lost": true});
    fake(&control, &url, "faults", lost).await;
    assert!(matches!(gcp.ensure_tenant(&spec).await, Err(PlatformError::Retryable { .. })));
    let tenant = gcp.ensure_tenant(&spec).await.unwrap();
    let state: Value = control.get(format!("{url}/_fake/state")).send().await.unwrap().json().await.unwrap();
    let made = state["projects"].as_array().unwrap().iter().filter(|p| p["projectId"] == tenant.external_id).count();
    assert_eq!(made, 1, "one project after the repeated call");

    let scope = Scope { roles: ["roles/viewer".to_owned()].into(), ..Scope::default() };
    let policy_of = |verb: &str| format!("/v3/projects/{}:{verb}", tenant.external_id);
    let throttled = json!({"path_contains": policy_of("getIamPolicy"), "status": 429, "retry_after": 7});
    fake(&control, &url, "faults", throttled).await;
    match gcp.observe(&tenant, &scope).await {
        Err(PlatformError::Retryable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)))
        }
        other => panic!("a throttled call: {other:?}"),
    }

    // Google's own 429 has no Retry-After: the adapter backs off itself first
    let spent = json!({"path_contains": policy_of("getIamPolicy"), "status": 429, "times": 2});
    fake(&control, &url, "faults", spent).await;
    gcp.observe(&tenant, &scope).await.unwrap();

    let people: Vec<String> = (0..4).map(|i| crate::unique(&format!("p{i}"))).collect();
    let users: Vec<_> = people.iter().map(|p| person(p)).collect();
    let grants = users.iter().map(|u| gcp.grant(&tenant, u, "roles/viewer"));
    for r in futures::future::join_all(grants).await {
        r.unwrap();
    }
    let lost = json!({"path_contains": policy_of("setIamPolicy"), "lost": true});
    fake(&control, &url, "faults", lost).await;
    let ann = crate::unique("ann");
    assert!(matches!(gcp.grant(&tenant, &person(&ann), "roles/viewer").await, Err(PlatformError::Retryable { .. })));
    gcp.grant(&tenant, &person(&ann), "roles/viewer").await.unwrap();
    let everyone = Scope { people: crate::people(people.iter().chain([&ann]).map(String::as_str)), ..scope.clone() };
    let held = gcp.observe(&tenant, &everyone).await.unwrap();
    let want = people.iter().chain([&ann]).map(|p| crate::held(p, "roles/viewer")).collect();
    assert_eq!(held, want, "every concurrent grant kept");
    let policy = project_state(&control, &url, &tenant.external_id).await["iamPolicy"].to_string();
    assert_eq!(policy.matches(&format!("user:{ann}@example.org")).count(), 1, "{policy}");
    // someone Canopy does not know is named by their address
    let unknown = gcp.observe(&tenant, &scope).await.unwrap();
    assert!(unknown.contains(&crate::held(&format!("user:{ann}@example.org"), "roles/viewer")), "{unknown:?}");
    let foreign = canopy_platforms::PlatformUser { username: format!("user:{ann}@example.org"), email: String::new() };
    gcp.revoke(&tenant, &foreign, "roles/viewer").await.unwrap();
    assert!(!gcp.observe(&tenant, &everyone).await.unwrap().contains(&crate::held(&ann, "roles/viewer")));

    let taken = crate::unique("taken");
    fake(&control, &url, "foreign-ids", json!({"projectId": canopy_platforms::gcp::project_id(&taken)})).await;
    match gcp.ensure_tenant(&crate::spec(taken, json!({}))).await {
        Err(e) => assert!(e.to_string().contains("cannot see it"), "{e}"),
        Ok(t) => panic!("a project ID held by someone else was adopted: {t:?}"),
    }
}
