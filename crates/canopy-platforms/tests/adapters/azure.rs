//! TN6 for Azure, first step: no emulator of Azure Resource Manager or
//! Microsoft Graph installs from a registry, so the tests run against a
//! stateful fake of their published API (`scripts/azure_fake.py`,
//! `docs/platforms/azure-api.md`). A fake that Microsoft's own clients
//! cannot talk to would prove nothing: this test drives it with them
//! (`scripts/azure_fidelity.py`: azure-identity, azure-mgmt-subscription,
//! azure-mgmt-authorization, azure-mgmt-resource, msgraph-sdk), through the
//! sign-in, a subscription alias and its polling, role definitions and
//! assignments with paging and their 409, Graph's users, a throttled call
//! retried, and a lost answer that leaves no duplicate.

use canopy_platforms::Platform;

use crate::component;

/// The adapter tests share one fake and change its settings (its request
/// budget): one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn tn6_the_azure_fake_is_what_microsofts_own_sdks_talk_to() {
    // the shared fake's presence says whether the fakes can start here
    if component(["CANOPY_TEST_AZURE_FIDELITY"], "Azure fake").is_none() {
        return;
    }
    crate::own_fake_is_faithful("azure", 5, "Microsoft's SDKs").await;
}

/// The adapter signed in to the fake, the fake's address, and a client
/// for its control API (`/_fake/...`).
fn azure() -> Option<(canopy_platforms::azure::Azure, String, reqwest::Client)> {
    use canopy_platforms::azure::{Azure, AzureConfig};
    let [url, ca, tenant, client_id, secret] = component(
        [
            "CANOPY_TEST_AZURE_URL",
            "CANOPY_TEST_AZURE_CA",
            "CANOPY_TEST_AZURE_TENANT",
            "CANOPY_TEST_AZURE_CLIENT_ID",
            "CANOPY_TEST_AZURE_CLIENT_SECRET",
        ],
        "Azure fake",
    )?;
    let pem = std::fs::read_to_string(&ca).unwrap();
    let config = AzureConfig {
        billing_scope: Some(BILLING_SCOPE.into()),
        authority_url: url.clone(),
        arm_url: url.clone(),
        graph_url: url.clone(),
        ca_cert: Some(pem.clone()),
        ..AzureConfig::public(&tenant, &client_id, &secret)
    };
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Some((Azure::new(config).unwrap(), url, control))
}

/// The billing scope the fake knows from its start.
const BILLING_SCOPE: &str = "/providers/Microsoft.Billing/billingAccounts/canopy-test-account/billingProfiles/\
                             canopy-test-profile/invoiceSections/canopy-test-section";

async fn fake(control: &reqwest::Client, url: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let res = control.post(format!("{url}/_fake/{path}")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "/_fake/{path}: {}", res.status());
    res.json().await.unwrap_or_default()
}

/// People of the directory, by the e-mail address Canopy knows them by.
async fn directory_users(control: &reqwest::Client, url: &str, names: &[&str]) {
    for name in names {
        let upn = format!("{name}@example.org");
        fake(control, url, "users", serde_json::json!({"userPrincipalName": upn, "mail": upn})).await;
    }
}

#[tokio::test]
async fn tn6_azure_subscription_per_tenant_holds_exactly_the_desired_roles() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((az, url, control)) = azure() else { return };
    let (ann, bob) = (crate::unique("ann"), crate::unique("bob"));
    directory_users(&control, &url, &[&ann, &bob]).await;
    let spec = crate::spec(crate::unique("team-a-web"), serde_json::json!({"workload": "DevTest"}));
    let tenant =
        crate::tenant_holds_exactly_the_desired_roles_of(&az, &spec, ["Reader", "Contributor"], true, [ann, bob]).await;
    let state: serde_json::Value =
        control.get(format!("{url}/_fake/state")).send().await.unwrap().json().await.unwrap();
    let sub = state["subscriptions"].to_string();
    assert!(sub.contains(&tenant.external_id) && sub.contains("DevTest"), "the landing zone's workload: {sub}");
    // a resource group left in the subscription is named before a deletion (DL2)
    let group = serde_json::json!({"subscriptionId": tenant.external_id, "resourceGroup": "app-rg"});
    fake(&control, &url, "resources", group.clone()).await;
    assert_eq!(az.find_resources(&tenant).await.unwrap(), vec!["resource group app-rg".to_owned()]);
    let mut gone = group;
    gone["remove"] = serde_json::json!(true);
    fake(&control, &url, "resources", gone).await;
    assert_eq!(az.find_resources(&tenant).await.unwrap(), Vec::<String>::new());
    crate::deleted_tenant_is_reported(&az, &tenant).await;
}

/// Throttling is retryable with Azure's own `Retry-After`; a person the
/// directory does not know is a permanent error of that grant alone; a
/// grant whose answer is lost is repeated without a second assignment.
#[tokio::test]
async fn tn6_azure_failures_are_classified_and_a_lost_answer_makes_no_duplicate() {
    use canopy_platforms::{PlatformError, PlatformUser, Scope};
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((az, url, control)) = azure() else { return };
    let ann = crate::unique("ann");
    directory_users(&control, &url, &[&ann]).await;
    let tenant = az.ensure_tenant(&crate::spec(crate::unique("team-b"), serde_json::json!({}))).await.unwrap();
    let scope = Scope { roles: ["Reader".to_owned()].into(), ..Scope::default() };

    // every fault names this test's subscription: tests beside it may use the fake too
    let assignments =
        format!("/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments", tenant.external_id);
    let throttled = serde_json::json!({"path_contains": assignments, "method": "GET", "status": 429, "retry_after": 7});
    fake(&control, &url, "faults", throttled).await;
    match az.observe(&tenant, &scope).await {
        Err(PlatformError::Retryable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)))
        }
        other => panic!("a throttled call: {other:?}"),
    }

    let nobody = PlatformUser { username: "nobody".into(), email: "nobody@example.org".into() };
    match az.grant(&tenant, &nobody, "Reader").await {
        Err(PlatformError::Permanent { message }) => assert!(message.contains("no user"), "{message}"),
        other => panic!("a person the directory does not know: {other:?}"),
    }

    let lost = serde_json::json!({"path_contains": format!("{assignments}/"), "method": "PUT", "lost": true});
    fake(&control, &url, "faults", lost).await;
    let user = PlatformUser { username: ann.clone(), email: format!("{ann}@example.org") };
    assert!(matches!(az.grant(&tenant, &user, "Reader").await, Err(PlatformError::Retryable { .. })));
    az.grant(&tenant, &user, "Reader").await.unwrap();
    let state: serde_json::Value =
        control.get(format!("{url}/_fake/state")).send().await.unwrap().json().await.unwrap();
    let of_ann = state["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["properties"]["description"] == format!("canopy:{ann}"))
        .count();
    assert_eq!(of_ann, 1, "one assignment after the repeated grant");
    assert_eq!(az.observe(&tenant, &scope).await.unwrap(), [crate::held(&ann, "Reader")].into());
}

/// ARM's request budget: when `x-ms-ratelimit-remaining-*` says none is
/// left, the adapter waits for the bucket to refill instead of drawing a
/// 429 (which would fail the run and stall the platform).
#[tokio::test]
async fn tn6_azure_paces_itself_when_arms_request_budget_is_spent() {
    use canopy_platforms::Scope;
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((az, url, control)) = azure() else { return };
    let tenant = az.ensure_tenant(&crate::spec(crate::unique("team-c"), serde_json::json!({}))).await.unwrap();
    let scope = Scope { roles: ["Reader".to_owned()].into(), ..Scope::default() };
    az.observe(&tenant, &scope).await.unwrap(); // role definitions looked up once
    let tight = serde_json::json!({"enabled": true, "reads": {"capacity": 2, "per_second": 2}});
    fake(&control, &url, "limits", tight).await;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(az.observe(&tenant, &scope).await.map(|_| ()));
    }
    fake(&control, &url, "limits", serde_json::json!({"enabled": false})).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}
