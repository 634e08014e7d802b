//! The Keystone adapter against a real Keystone (`scripts/keystone`).

use canopy_platforms::keystone::{Keystone, KeystoneConfig};
use canopy_platforms::{Platform, PlatformError, PlatformUser, TenantSpec};
use serde_json::json;

use crate::*;

fn keystone() -> Option<Keystone> {
    let [url, password] = component(["CANOPY_TEST_KEYSTONE_URL", "CANOPY_TEST_KEYSTONE_PASSWORD"], "Keystone")?;
    Some(
        Keystone::new(KeystoneConfig { auth_url: url, domain: "Default".into(), username: "admin".into(), password })
            .unwrap(),
    )
}

/// One test, scenarios in turn: Keystone on SQLite cannot take writes from
/// two flows at once (it answers 500, "database is locked").
#[tokio::test]
async fn tn6_keystone_adapter() {
    let Some(ks) = keystone() else { return };
    tenant_is_a_project_and_holds_exactly_the_desired_roles(&ks).await;
    failures_say_whether_a_retry_can_help(&ks).await;
    a_lost_answer_makes_no_second_project().await;
    a_user_made_again_outside_canopy_is_granted_and_revoked_by_its_new_id(&ks).await;
}

/// Keystone's own API, as an operator would use it beside Canopy.
async fn raw(method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let [url, password] = component(["CANOPY_TEST_KEYSTONE_URL", "CANOPY_TEST_KEYSTONE_PASSWORD"], "Keystone").unwrap();
    let http = reqwest::Client::new();
    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"system": {"all": true}}
    }});
    let res = http.post(format!("{url}/auth/tokens")).json(&auth).send().await.unwrap();
    let token = res.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let mut req = http.request(method, format!("{url}{path}")).header("X-Auth-Token", token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap_or(serde_json::Value::Null)
}

/// Users are found by name at every grant and revocation: a user renamed
/// outside Canopy does not get the role of the name it left, and a user
/// deleted and made again (a new id, the same name) is granted and revoked
/// by its new id, never skipped as "not held".
async fn a_user_made_again_outside_canopy_is_granted_and_revoked_by_its_new_id(ks: &Keystone) {
    use reqwest::Method;
    let tenant = ks.ensure_tenant(&spec(unique("again"), json!({}))).await.unwrap();
    let user = PlatformUser { username: unique("rita"), email: "rita@example.org".into() };
    ks.grant(&tenant, &user, "member").await.unwrap();
    let id_of = |v: &serde_json::Value| v["users"][0]["id"].as_str().unwrap().to_owned();
    let domain = raw(Method::GET, "/domains?name=Default", None).await["domains"][0]["id"].as_str().unwrap().to_owned();

    // renamed outside Canopy: the name's new holder gets the role, not the renamed user
    let first = id_of(&raw(Method::GET, &format!("/users?name={}", user.username), None).await);
    let renamed = unique("bob");
    raw(Method::PATCH, &format!("/users/{first}"), Some(json!({"user": {"name": renamed}}))).await;
    let reviewer = PlatformUser { username: unique("reviewer"), email: "reviewer@example.org".into() };
    ks.grant(&tenant, &reviewer, "reader").await.unwrap();
    ks.revoke(&tenant, &PlatformUser { username: renamed.clone(), email: String::new() }, "member").await.unwrap();
    ks.grant(&tenant, &user, "member").await.unwrap();
    let held = ks.observe(&tenant, &Default::default()).await.unwrap();
    assert_eq!(
        held,
        [crate::held(&reviewer.username, "reader"), crate::held(&user.username, "member")].into_iter().collect(),
        "{held:?}"
    );

    // deleted and made again, and given the role outside Canopy: revoked by the new id
    let second = id_of(&raw(Method::GET, &format!("/users?name={}", user.username), None).await);
    assert_ne!(second, first);
    raw(Method::DELETE, &format!("/users/{second}"), None).await;
    let third = raw(Method::POST, "/users", Some(json!({"user": {"name": user.username, "domain_id": domain}}))).await;
    let third = third["user"]["id"].as_str().unwrap().to_owned();
    let role = raw(Method::GET, "/roles?name=member", None).await["roles"][0]["id"].as_str().unwrap().to_owned();
    raw(Method::PUT, &format!("/projects/{}/users/{third}/roles/{role}", tenant.external_id), None).await;
    ks.revoke(&tenant, &user, "member").await.unwrap();
    let held = ks.observe(&tenant, &Default::default()).await.unwrap();
    assert_eq!(held, [crate::held(&reviewer.username, "reader")].into_iter().collect(), "{held:?}");
    ks.delete_tenant(&tenant).await.unwrap();
}

/// Answers lost on the way to making the project and giving the role;
/// repeated, they make nothing twice.
async fn a_lost_answer_makes_no_second_project() {
    let [url, password] = component(["CANOPY_TEST_KEYSTONE_URL", "CANOPY_TEST_KEYSTONE_PASSWORD"], "Keystone").unwrap();
    let lossy = Lossy::to(&url).await;
    let config =
        KeystoneConfig { auth_url: lossy.url.clone(), domain: "Default".into(), username: "admin".into(), password };
    let ks = Keystone::new(config).unwrap();
    let spec = spec(unique("lost"), json!({}));
    a_lost_answer_makes_no_duplicate(&ks, &lossy, &spec, "member", ["POST /v3/projects ", "PUT /v3/projects/"]).await;
}

async fn tenant_is_a_project_and_holds_exactly_the_desired_roles(ks: &Keystone) {
    let spec = spec(unique("team-a-web"), json!({}));
    let tenant = tenant_holds_exactly_the_desired_roles(ks, &spec, ["member", "reader"], true).await;
    deleted_tenant_is_reported(ks, &tenant).await;
}

async fn failures_say_whether_a_retry_can_help(ks: &Keystone) {
    let tenant = ks
        .ensure_tenant(&TenantSpec {
            name: unique("errs"),
            description: String::new(),
            landing_zone: Default::default(),
        })
        .await
        .unwrap();
    let user = PlatformUser { username: unique("eve"), email: "eve@example.org".into() };
    match ks.grant(&tenant, &user, "no-such-role").await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("no-such-role"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    ks.delete_tenant(&tenant).await.unwrap();

    let url = std::env::var("CANOPY_TEST_KEYSTONE_URL").unwrap();
    let wrong = Keystone::new(KeystoneConfig {
        auth_url: url,
        domain: "Default".into(),
        username: "admin".into(),
        password: "wrong".into(),
    })
    .unwrap();
    match wrong
        .ensure_tenant(&TenantSpec { name: unique("x"), description: String::new(), landing_zone: Default::default() })
        .await
    {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("401"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let port = closed_port();
    let down = Keystone::new(KeystoneConfig {
        auth_url: format!("http://127.0.0.1:{port}/v3"),
        domain: "Default".into(),
        username: "admin".into(),
        password: "x".into(),
    })
    .unwrap();
    assert!(matches!(down.observe(&tenant, &Default::default()).await, Err(PlatformError::Retryable { .. })));
}
