//! TN6 for Cloud Foundry: the Cloud Controller and UAA do not install from a
//! registry, so the tests run against a stateful fake
//! of their published V3 API (`scripts/cf_fake.py`,
//! `docs/platforms/cloudfoundry-api.md`). This test holds the fake to what
//! the Python client `cloudfoundry-client` accepts (`scripts/cf_fidelity.py`):
//! the sign-in and its refresh, spaces and their deletion job, users, the
//! role rules and their 422s, pagination, the rate limit, a lost answer.

use canopy_platforms::cloudfoundry::{CloudFoundry, CloudFoundryConfig};
use canopy_platforms::{Platform, PlatformError, PlatformUser, Scope};
use serde_json::{Value, json};

use crate::{component, person};

/// The adapter tests share one fake and inject faults into it: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn tn6_the_cloud_foundry_fake_is_what_its_python_client_talks_to() {
    // the shared fake's presence says whether the fakes can start here
    if component(["CANOPY_TEST_CF_FIDELITY"], "Cloud Foundry fake").is_none() {
        return;
    }
    crate::own_fake_is_faithful("cf", 5, "the Cloud Foundry client").await;
}

/// The adapter signed in to the fake (people in `origin`), the fake's
/// address, and a client for its control API (`/_fake/...`).
fn connect(origin: &str) -> Option<(CloudFoundry, String, reqwest::Client)> {
    connect_to(origin, |_| None)
}

/// [`connect`], with the UAA address made from the fake's (`None`: found
/// through the API's root).
fn connect_to(origin: &str, uaa: impl Fn(&str) -> Option<String>) -> Option<(CloudFoundry, String, reqwest::Client)> {
    let [url, ca, username, password, org] = component(
        [
            "CANOPY_TEST_CF_URL",
            "CANOPY_TEST_CF_CA",
            "CANOPY_TEST_CF_USERNAME",
            "CANOPY_TEST_CF_PASSWORD",
            "CANOPY_TEST_CF_ORG",
        ],
        "Cloud Foundry fake",
    )?;
    let pem = std::fs::read_to_string(&ca).unwrap();
    let config = CloudFoundryConfig {
        api_url: url.clone(),
        organization: org,
        origin: origin.into(),
        username,
        password,
        ca_cert: Some(pem.clone()),
        uaa_url: uaa(&url),
    };
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Some((CloudFoundry::new(config).unwrap(), url, control))
}

async fn fake(control: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let res = control.post(format!("{url}/_fake/{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "/_fake/{path}: {}", res.status());
    res.json().await.unwrap_or_default()
}

async fn state(control: &reqwest::Client, url: &str) -> Value {
    control.get(format!("{url}/_fake/state")).send().await.unwrap().json().await.unwrap()
}

/// People UAA knows, by the e-mail address Canopy knows them by.
async fn uaa_users(control: &reqwest::Client, url: &str, names: &[&str]) {
    for name in names {
        fake(control, url, "uaa-users", json!({"username": format!("{name}@example.org"), "origin": "uaa"})).await;
    }
}

#[tokio::test]
async fn tn6_cloud_foundry_space_per_tenant_holds_exactly_the_desired_roles() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((cf, url, control)) = connect("uaa") else { return };
    let (ann, bob) = (crate::unique("ann"), crate::unique("bob"));
    uaa_users(&control, &url, &[&ann, &bob]).await;
    fake(&control, &url, "orgs", json!({"name": "team-zone"})).await;
    let spec = crate::spec(crate::unique("team-a-web"), json!({"organization": "team-zone"}));
    let roles = ["space_auditor", "space_developer"];
    let tenant = crate::tenant_holds_exactly_the_desired_roles_of(&cf, &spec, roles, true, [ann.clone(), bob]).await;
    let s = state(&control, &url).await;
    let space = s["spaces"].as_array().unwrap().iter().find(|x| x["guid"] == tenant.external_id).unwrap().clone();
    let zone = s["organizations"].as_array().unwrap().iter().find(|o| o["name"] == "team-zone").unwrap().clone();
    assert_eq!(space["organization_guid"], zone["guid"], "the landing zone's organization");
    // ann joined the organization before the space (Cloud Foundry's rule), and stays in it
    let ann_id = s["users"].as_array().unwrap().iter().find(|u| u["username"] == format!("{ann}@example.org")).unwrap()
        ["guid"]
        .clone();
    assert!(
        s["roles"].as_array().unwrap().iter().any(|r| r["user_guid"] == ann_id && r["type"] == "organization_user")
    );

    // what the space holds is named before a deletion (DL2): its apps,
    // routes and own service instances, not one shared into it
    let other =
        cf.ensure_tenant(&crate::spec(crate::unique("other"), json!({"organization": "team-zone"}))).await.unwrap();
    let space_guid = tenant.external_id.clone();
    let things = [
        json!({"type": "app", "space_guid": space_guid, "name": "web"}),
        json!({"type": "route", "space_guid": space_guid, "host": "web"}),
        json!({"type": "service_instance", "space_guid": space_guid, "name": "db"}),
        json!({"type": "service_instance", "space_guid": other.external_id, "name": "shared", "shared_to": [space_guid]}),
    ];
    for t in things {
        fake(&control, &url, "resources", t).await;
    }
    let found = cf.find_resources(&tenant).await.unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0] == "app web" && found[1].starts_with("route web.") && found[2] == "service instance db",
        "{found:?}"
    );
    assert!(cf.find_resources(&other).await.unwrap() == vec!["service instance shared".to_owned()]);
    crate::deleted_tenant_is_reported(&cf, &tenant).await;
    crate::deleted_tenant_is_reported(&cf, &other).await;
}

/// Throttling is retryable with the Cloud Controller's `Retry-After`; a
/// person UAA does not know is a permanent error of that grant alone;
/// lost answers leave no second space or role when the call is repeated;
/// people of another origin are made in UAA; a deletion that fails in its
/// job says why.
#[tokio::test]
async fn tn6_cloud_foundry_failures_are_classified_and_a_lost_answer_makes_no_duplicate() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((cf, url, control)) = connect("uaa") else { return };
    let name = crate::unique("team-b");
    // every fault names this test's space: tests beside it may use the fake too
    let lost = json!({"path_contains": "/v3/spaces", "method": "POST", "body_contains": name, "lost": true});
    fake(&control, &url, "faults", lost).await;
    assert!(matches!(
        cf.ensure_tenant(&crate::spec(name.clone(), json!({}))).await,
        Err(PlatformError::Retryable { .. })
    ));
    let tenant = cf.ensure_tenant(&crate::spec(name.clone(), json!({}))).await.unwrap();
    let s = state(&control, &url).await;
    assert_eq!(s["spaces"].as_array().unwrap().iter().filter(|x| x["name"] == name.as_str()).count(), 1);

    let scope = Scope { roles: ["space_developer".to_owned()].into(), ..Scope::default() };
    fake(
        &control,
        &url,
        "faults",
        json!({"path_contains": format!("/v3/roles?space_guids={}", tenant.external_id), "method": "GET",
            "status": 429, "retry_after": 7}),
    )
    .await;
    match cf.observe(&tenant, &scope).await {
        Err(PlatformError::Retryable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)))
        }
        other => panic!("a throttled call: {other:?}"),
    }
    match cf.grant(&tenant, &person("nobody-known"), "space_developer").await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("No user exists"), "{message}"),
        other => panic!("a person UAA does not know: {other:?}"),
    }
    match cf.grant(&tenant, &person("x"), "space_admin").await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("not a space role"), "{message}"),
        other => panic!("a role Cloud Foundry does not have: {other:?}"),
    }

    let ann = crate::unique("ann");
    uaa_users(&control, &url, &[&ann]).await;
    let lost = json!({"path_contains": "/v3/roles", "method": "POST", "body_contains": tenant.external_id,
        "lost": true, "times": 2});
    fake(&control, &url, "faults", lost).await;
    assert!(matches!(cf.grant(&tenant, &person(&ann), "space_developer").await, Err(PlatformError::Retryable { .. })));
    assert!(matches!(cf.grant(&tenant, &person(&ann), "space_developer").await, Err(PlatformError::Retryable { .. })));
    cf.grant(&tenant, &person(&ann), "space_developer").await.unwrap();
    let s = state(&control, &url).await;
    let of_ann = s["roles"].as_array().unwrap().iter().filter(|r| r["space_guid"] == tenant.external_id).count();
    assert_eq!(of_ann, 1, "one space role after the repeated grants");
    // someone Canopy does not know is named by origin and username, and can be revoked so
    let held = cf.observe(&tenant, &scope).await.unwrap();
    let foreign = format!("uaa:{ann}@example.org");
    assert_eq!(held, [crate::held(&foreign, "space_developer")].into());
    cf.revoke(&tenant, &PlatformUser { username: foreign, email: String::new() }, "space_developer").await.unwrap();
    assert!(cf.observe(&tenant, &scope).await.unwrap().is_empty());

    // people of an SSO origin are made in UAA when they are missing
    let Some((ldap, _, _)) = connect("ldap") else { return };
    let carl = crate::unique("carl");
    ldap.grant(&tenant, &person(&carl), "space_developer").await.unwrap();
    let with_carl = Scope { people: crate::people([carl.as_str()]), ..scope.clone() };
    assert_eq!(ldap.observe(&tenant, &with_carl).await.unwrap(), [crate::held(&carl, "space_developer")].into());
    let s = state(&control, &url).await;
    assert!(s["uaa_users"].to_string().contains(&format!("{carl}@example.org")), "made in UAA");

    // a UAA address given pins where the password goes: nothing is asked of the API's root
    let Some((pinned, _, _)) = connect_to("uaa", |url| Some(format!("{url}/uaa"))) else { return };
    assert!(pinned.observe(&tenant, &scope).await.is_ok());
    let port = crate::closed_port();
    let Some((elsewhere, _, _)) = connect_to("uaa", |_| Some(format!("https://127.0.0.1:{port}"))) else { return };
    match elsewhere.observe(&tenant, &scope).await {
        Err(PlatformError::Retryable { message, .. }) => assert!(message.contains(&port.to_string()), "{message}"),
        other => panic!("a UAA that does not answer: {other:?}"),
    }

    // a service instance still being deprovisioned fails the space's deletion job
    let si = json!({"type": "service_instance", "space_guid": tenant.external_id, "name": "busy", "operation_in_progress": true});
    fake(&control, &url, "resources", si).await;
    match cf.delete_tenant(&tenant).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("could not be deleted"), "{message}"),
        other => panic!("a failed deletion job: {other:?}"),
    }
}
