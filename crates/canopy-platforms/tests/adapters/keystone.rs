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
