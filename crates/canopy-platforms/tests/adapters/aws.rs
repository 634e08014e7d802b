//! The AWS adapter against moto (`scripts/moto`), which serves
//! Organizations, IAM Identity Center and the Identity Store.

use canopy_platforms::aws::{Aws, AwsConfig, sdk_config};
use canopy_platforms::{Platform, PlatformError, PlatformUser, TenantRef};
use serde_json::json;

use crate::*;

fn config(url: &str) -> AwsConfig {
    AwsConfig {
        region: "us-east-1".into(),
        endpoint_url: Some(url.to_owned()),
        access_key_id: "canopy-test".into(),
        secret_access_key: "canopy-test-secret".into(),
    }
}

fn moto() -> Option<(Aws, String, String)> {
    let [url, ou] = component(["CANOPY_TEST_MOTO_URL", "CANOPY_TEST_MOTO_OU"], "moto (AWS)")?;
    Some((Aws::new(config(&url)), url, ou))
}

#[tokio::test]
async fn tn6_aws_account_per_tenant_holds_exactly_the_desired_permission_sets() {
    let Some((aws, url, ou)) = moto() else { return };
    let landing_zone = json!({
        "account_email": "aws+{name}@example.org",
        "organizational_unit": ou,
        "permission_sets": {"CanopyAudit": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
    });
    let spec = spec(unique("team-a-web"), landing_zone);
    let tenant = tenant_holds_exactly_the_desired_roles(&aws, &spec, ["CanopyUser", "CanopyReader"], true).await;

    // TN2: the account sits in the landing zone's OU, and the landing zone's
    // permission set exists with its policy
    let sdk = sdk_config(config(&url));
    let org = aws_sdk_organizations::Client::new(&sdk);
    let parents = org.list_parents().child_id(&tenant.external_id).send().await.unwrap();
    assert_eq!(parents.parents()[0].id(), Some(ou.as_str()));
    let account = org.describe_account().account_id(&tenant.external_id).send().await.unwrap();
    assert_eq!(account.account().unwrap().email(), Some(format!("aws+{}@example.org", spec.name).as_str()));
    let sso = aws_sdk_ssoadmin::Client::new(&sdk);
    let instance = sso.list_instances().send().await.unwrap().instances()[0].instance_arn().unwrap().to_owned();
    let mut audit = None;
    for arn in sso.list_permission_sets().instance_arn(&instance).send().await.unwrap().permission_sets() {
        let set = sso.describe_permission_set().instance_arn(&instance).permission_set_arn(arn).send().await.unwrap();
        if set.permission_set().unwrap().name() == Some("CanopyAudit") {
            audit = Some(arn.clone());
        }
    }
    let audit = audit.expect("the landing zone's permission set was made");
    let policies = sso
        .list_managed_policies_in_permission_set()
        .instance_arn(&instance)
        .permission_set_arn(&audit)
        .send()
        .await
        .unwrap();
    let arns: Vec<_> = policies.attached_managed_policies().iter().filter_map(|p| p.arn()).collect();
    assert_eq!(arns, ["arn:aws:iam::aws:policy/ReadOnlyAccess"]);
    // ensuring again attaches nothing twice and moves nothing
    aws.ensure_tenant(&spec).await.unwrap();
    let again = sso
        .list_managed_policies_in_permission_set()
        .instance_arn(&instance)
        .permission_set_arn(&audit)
        .send()
        .await
        .unwrap();
    assert_eq!(again.attached_managed_policies().len(), 1);

    // closing the account: AWS keeps it SUSPENDED, which Canopy reports
    deleted_tenant_is_reported(&aws, &tenant).await;
}

#[tokio::test]
async fn tn6_aws_failures_say_whether_a_retry_can_help() {
    let Some((aws, _, _)) = moto() else { return };
    // without an account e-mail address no account can be made
    match aws.ensure_tenant(&spec(unique("no-mail"), json!({}))).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("account_email"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // an organizational unit that does not exist
    let lz = json!({"account_email": "aws+{name}@example.org", "organizational_unit": "ou-none-00000000"});
    match aws.ensure_tenant(&spec(unique("bad-ou"), lz)).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("MoveAccount"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // a closed account cannot be observed
    match aws.observe(&TenantRef { external_id: "000000000000".into() }, &Default::default()).await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("000000000000"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // Canopy cannot look inside an account, so it never deletes one blind
    assert!(matches!(
        aws.find_resources(&TenantRef { external_id: "000000000000".into() }).await,
        Err(PlatformError::Permanent { .. })
    ));
    let down = Aws::new(config(&format!("http://127.0.0.1:{}", closed_port())));
    let user = PlatformUser { username: "eve".into(), email: "eve@example.org".into() };
    match down.grant(&TenantRef { external_id: "000000000000".into() }, &user, "CanopyUser").await {
        Err(PlatformError::Retryable { .. }) => {}
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

/// TN6: answers lost on the way to making an account and giving a role;
/// repeated, they leave one account of the name (AWS allows several).
#[tokio::test]
async fn tn6_aws_a_lost_answer_makes_no_second_account() {
    let Some((_, url, ou)) = moto() else { return };
    let lossy = Lossy::to(&url).await;
    let aws = Aws::new(config(&lossy.url));
    let spec = spec(unique("lost"), json!({"account_email": "aws+{name}@example.org", "organizational_unit": ou}));
    let patterns = [".CreateAccount\r\n", ".CreateAccountAssignment\r\n"];
    a_lost_answer_makes_no_duplicate(&aws, &lossy, &spec, "CanopyUser", patterns).await;
    let org = aws_sdk_organizations::Client::new(&sdk_config(config(&url)));
    let accounts = org.list_accounts().send().await.unwrap();
    let named = accounts.accounts().iter().filter(|a| a.name() == Some(spec.name.as_str())).count();
    assert_eq!(named, 1, "one account named {}", spec.name);
}
