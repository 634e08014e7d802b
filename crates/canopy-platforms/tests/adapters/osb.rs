//! The Open Service Broker adapter against a broker built on
//! `openbrokerapi` (`scripts/osb`), which provisions and deprovisions
//! asynchronously.

use canopy_platforms::osb::{BrokerConfig, ServiceBroker};
use canopy_platforms::{Platform, PlatformError, PlatformUser, TenantRef};
use serde_json::json;

use crate::*;

fn config(url: &str, username: &str, password: &str) -> BrokerConfig {
    BrokerConfig {
        broker_url: url.to_owned(),
        service_id: "canopy-test-service".into(),
        plan_id: "canopy-test-plan".into(),
        username: username.to_owned(),
        password: password.to_owned(),
    }
}

fn broker() -> Option<(ServiceBroker, [String; 3])> {
    let env =
        component(["CANOPY_TEST_OSB_URL", "CANOPY_TEST_OSB_USERNAME", "CANOPY_TEST_OSB_PASSWORD"], "service broker")?;
    Some((ServiceBroker::new(config(&env[0], &env[1], &env[2])).unwrap(), env))
}

#[tokio::test]
async fn tn6_osb_service_instance_per_tenant_holds_exactly_the_desired_bindings() {
    let Some((osb, [url, user, password])) = broker() else { return };
    let spec = spec(unique("team-a-web"), json!({"size": "small"}));
    let tenant = tenant_holds_exactly_the_desired_roles(&osb, &spec, ["admin", "viewer"], false).await;

    // the instance carries the landing zone's settings as its parameters
    let instance: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/v2/service_instances/{}", tenant.external_id))
        .basic_auth(&user, Some(&password))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(instance["parameters"], json!({"size": "small"}));
    assert_eq!(osb.find_resources(&tenant).await.unwrap(), Vec::<String>::new());
    deleted_tenant_is_reported(&osb, &tenant).await;
}

#[tokio::test]
async fn tn6_osb_failures_say_whether_a_retry_can_help() {
    let Some((_, [url, user, _])) = broker() else { return };
    let wrong = ServiceBroker::new(config(&url, &user, "wrong-password")).unwrap();
    match wrong.ensure_tenant(&spec(unique("x"), json!({}))).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("401"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let mut bad_plan = config(&url, &user, "x");
    bad_plan.password = std::env::var("CANOPY_TEST_OSB_PASSWORD").unwrap();
    bad_plan.plan_id = "no-such-plan".into();
    match ServiceBroker::new(bad_plan).unwrap().ensure_tenant(&spec(unique("x"), json!({}))).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("plan_id"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let down = ServiceBroker::new(config(&format!("http://127.0.0.1:{}", closed_port()), &user, "x")).unwrap();
    let someone = PlatformUser { username: "eve".into(), email: "eve@example.org".into() };
    match down.grant(&TenantRef { external_id: "x".into() }, &someone, "admin").await {
        Err(PlatformError::Retryable { .. }) => {}
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

/// TN6: answers lost on the way to provisioning and binding; repeated,
/// they leave one instance and one binding.
#[tokio::test]
async fn tn6_osb_a_lost_answer_makes_no_duplicate() {
    let Some((_, [url, user, password])) = broker() else { return };
    let lossy = Lossy::to(&url).await;
    let osb = ServiceBroker::new(config(&lossy.url, &user, &password)).unwrap();
    let spec = spec(unique("lost"), json!({"size": "small"}));
    let patterns = ["PUT /v2/service_instances/", "/service_bindings/"];
    a_lost_answer_makes_no_duplicate(&osb, &lossy, &spec, "admin", patterns).await;
}
