//! TN1-TN6, AC7, AC10, DL1-DL3 through the API on the other real platforms:
//! AWS (moto), Kubernetes and OpenShift (kube-apiserver), an Open Service
//! Broker (openbrokerapi), and the fakes of Azure, Google Cloud and Cloud
//! Foundry: all eight platform types. The same story runs on each: a platform with a
//! landing zone, a tenant, people bound directly and through a group, drift
//! repaired, access ended, the tenant deleted. What a platform holds is read
//! with its adapter, which its own test checks against the component.

use std::collections::BTreeSet;

use canopy_platforms::aws::{Aws, AwsConfig};
use canopy_platforms::kubernetes::{Kubernetes, KubernetesConfig};
use canopy_platforms::osb::{BrokerConfig, ServiceBroker};
use canopy_platforms::{AnyPlatform, Held, Platform, PlatformUser, Scope, TenantRef};
use canopy_testkit::TestApp;
use serde_json::{Value, json};

use crate::tenants::unique;

/// A platform under test: its registration, its landing zone, and an
/// adapter to look at (and change, as someone outside Canopy would) what it holds.
struct Cloud {
    platform: Value,
    landing_zone: Value,
    /// The platform roles of project_reader, project_user and project_admin.
    roles: [&'static str; 3],
    adapter: AnyPlatform,
    /// Whether the platform lists assignments Canopy did not make (an OSB
    /// cannot list bindings).
    sees_foreign: bool,
    manual_deletion: bool,
    /// Where the platform's directory is seeded with the test's people (a
    /// fake's control API, a client trusting its CA, and the record of a
    /// person by username): Azure and Cloud Foundry give roles to people
    /// their directory knows, and Canopy makes none there.
    directory: Option<(String, reqwest::Client, Record)>,
    /// How the platform names a person Canopy does not know (by account
    /// name, or by address where it names people by e-mail).
    foreign_as: fn(&str) -> String,
}

/// A person's record in a fake's directory, by username.
type Record = fn(&str) -> Value;

fn by_name(u: &str) -> String {
    u.to_owned()
}

fn aws(identifier: &str) -> Option<Cloud> {
    let [url, ou] = canopy_testkit::component(["CANOPY_TEST_MOTO_URL", "CANOPY_TEST_MOTO_OU"], "moto (AWS)")?;
    let roles = ["CanopyReader", "CanopyUser", "CanopyAdmin"];
    let (key, secret) = ("canopy-test", "canopy-test-secret");
    Some(Cloud {
        platform: json!({"identifier": identifier, "type": "aws",
            "settings": {"region": "us-east-1", "endpoint_url": url},
            "secrets": {"access_key_id": key, "secret_access_key": secret},
            "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]},
            "landing_zone_required": true}),
        landing_zone: json!({"account_email": "aws+{name}@example.org", "organizational_unit": ou}),
        roles,
        adapter: AnyPlatform::Aws(Aws::new(AwsConfig {
            region: "us-east-1".into(),
            endpoint_url: Some(url),
            access_key_id: key.into(),
            secret_access_key: secret.into(),
        })),
        sees_foreign: true,
        manual_deletion: true,
        directory: None,
        foreign_as: by_name,
    })
}

fn azure(identifier: &str) -> Option<Cloud> {
    let [url, ca, tenant, client_id, secret] = canopy_testkit::component(
        [
            "CANOPY_TEST_AZURE_URL",
            "CANOPY_TEST_AZURE_CA",
            "CANOPY_TEST_AZURE_TENANT",
            "CANOPY_TEST_AZURE_CLIENT_ID",
            "CANOPY_TEST_AZURE_CLIENT_SECRET",
        ],
        "Azure fake",
    )?;
    let ca = std::fs::read_to_string(ca).unwrap();
    let roles = ["Reader", "Contributor", "Owner"];
    let billing = "/providers/Microsoft.Billing/billingAccounts/canopy-test-account/billingProfiles/\
                   canopy-test-profile/invoiceSections/canopy-test-section";
    let settings = json!({"tenant_id": tenant, "billing_scope": billing, "authority_url": url, "arm_url": url,
        "graph_url": url, "ca_cert": ca});
    let platform = json!({"identifier": identifier, "type": "azure", "settings": settings,
        "secrets": {"client_id": client_id, "client_secret": secret},
        "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]}});
    let connected = canopy_platforms::connect(
        canopy_domain::platforms::PlatformType::Azure,
        platform["settings"].as_object().unwrap(),
        platform["secrets"].as_object().unwrap(),
    )
    .unwrap();
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    Some(Cloud {
        platform,
        landing_zone: json!({"workload": "DevTest", "management_group": "canopy-test"}),
        roles,
        adapter: connected,
        sees_foreign: true,
        manual_deletion: true,
        directory: Some((
            format!("{url}/_fake/users"),
            control,
            |u| json!({"userPrincipalName": format!("{u}@example.org"), "mail": format!("{u}@example.org")}),
        )),
        foreign_as: by_name,
    })
}

fn gcp(identifier: &str) -> Option<Cloud> {
    let [url, ca, key, folder] = canopy_testkit::component(
        ["CANOPY_TEST_GCP_URL", "CANOPY_TEST_GCP_CA", "CANOPY_TEST_GCP_KEY", "CANOPY_TEST_GCP_FOLDER"],
        "Google Cloud fake",
    )?;
    let ca = std::fs::read_to_string(ca).unwrap();
    let key = std::fs::read_to_string(key).unwrap();
    let roles = ["roles/viewer", "roles/editor", "roles/resourcemanager.projectIamAdmin"];
    let platform = json!({"identifier": identifier, "type": "gcp",
        "settings": {"parent": folder, "crm_url": url, "asset_url": url, "ca_cert": ca},
        "secrets": {"service_account_key": key},
        "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]}});
    let connected = canopy_platforms::connect(
        canopy_domain::platforms::PlatformType::Gcp,
        platform["settings"].as_object().unwrap(),
        platform["secrets"].as_object().unwrap(),
    )
    .unwrap();
    Some(Cloud {
        platform,
        landing_zone: json!({"folder": folder}),
        roles,
        adapter: connected,
        sees_foreign: true,
        manual_deletion: true,
        directory: None,
        foreign_as: |u| format!("user:{u}@example.org"),
    })
}

fn cloud_foundry(identifier: &str) -> Option<Cloud> {
    let [url, ca, username, password, org] = canopy_testkit::component(
        [
            "CANOPY_TEST_CF_URL",
            "CANOPY_TEST_CF_CA",
            "CANOPY_TEST_CF_USERNAME",
            "CANOPY_TEST_CF_PASSWORD",
            "CANOPY_TEST_CF_ORG",
        ],
        "Cloud Foundry fake",
    )?;
    let ca = std::fs::read_to_string(ca).unwrap();
    let roles = ["space_auditor", "space_developer", "space_manager"];
    let platform = json!({"identifier": identifier, "type": "cloudfoundry",
        "settings": {"api_url": url, "organization": org, "ca_cert": ca},
        "secrets": {"username": username, "password": password},
        "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]}});
    let connected = canopy_platforms::connect(
        canopy_domain::platforms::PlatformType::CloudFoundry,
        platform["settings"].as_object().unwrap(),
        platform["secrets"].as_object().unwrap(),
    )
    .unwrap();
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    Some(Cloud {
        platform,
        landing_zone: json!({"organization": org}),
        roles,
        adapter: connected,
        sees_foreign: true,
        manual_deletion: false,
        directory: Some((
            format!("{url}/_fake/uaa-users"),
            control,
            |u| json!({"username": format!("{u}@example.org"), "origin": "uaa"}),
        )),
        foreign_as: |u| format!("uaa:{u}@example.org"),
    })
}

fn kubernetes(identifier: &str, openshift: bool) -> Option<Cloud> {
    let [url, token, ca] = canopy_testkit::component(
        ["CANOPY_TEST_KUBE_URL", "CANOPY_TEST_KUBE_TOKEN", "CANOPY_TEST_KUBE_CA"],
        "kube-apiserver",
    )?;
    let ca = std::fs::read_to_string(ca).unwrap();
    let roles = ["view", "edit", "admin"];
    let ty = if openshift { "openshift" } else { "kubernetes" };
    Some(Cloud {
        platform: json!({"identifier": identifier, "type": ty,
            "settings": {"api_url": url, "ca_cert": ca},
            "secrets": {"token": token},
            "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]}}),
        landing_zone: json!({"labels": {"team": "web"}, "quota": {"pods": "10"}}),
        roles,
        adapter: AnyPlatform::Kubernetes(
            Kubernetes::new(KubernetesConfig { api_url: url, ca_cert: Some(ca), token, openshift }).unwrap(),
        ),
        sees_foreign: true,
        manual_deletion: true,
        directory: None,
        foreign_as: by_name,
    })
}

fn osb(identifier: &str) -> Option<Cloud> {
    let [url, user, password] = canopy_testkit::component(
        ["CANOPY_TEST_OSB_URL", "CANOPY_TEST_OSB_USERNAME", "CANOPY_TEST_OSB_PASSWORD"],
        "service broker",
    )?;
    let roles = ["viewer", "developer", "admin"];
    let (service, plan) = ("canopy-test-service", "canopy-test-plan");
    Some(Cloud {
        platform: json!({"identifier": identifier, "type": "osb",
            "settings": {"broker_url": url, "service_id": service, "plan_id": plan},
            "secrets": {"username": user, "password": password},
            "role_mapping": {"project_reader": roles[0], "project_user": roles[1], "project_admin": roles[2]}}),
        landing_zone: json!({"size": "small"}),
        roles,
        adapter: AnyPlatform::Osb(
            ServiceBroker::new(BrokerConfig {
                broker_url: url,
                service_id: service.into(),
                plan_id: plan.into(),
                username: user,
                password,
            })
            .unwrap(),
        ),
        sees_foreign: false,
        manual_deletion: false,
        directory: None,
        foreign_as: by_name,
    })
}

impl Cloud {
    /// What the tenant holds in the mapped roles, as `account:role`;
    /// `asked` names what an OSB is asked about (it lists nothing).
    async fn held(&self, external_id: &str, asked: &[(&str, &str)]) -> BTreeSet<String> {
        let tenant = TenantRef { external_id: external_id.to_owned() };
        let assignments =
            asked.iter().map(|(u, r)| Held { username: u.to_string(), platform_role: r.to_string() }).collect();
        let people = asked.iter().map(|(u, _)| (u.to_string(), format!("{u}@example.org"))).collect();
        let scope = Scope { assignments, roles: self.roles.map(String::from).into(), people };
        let held = self.adapter.observe(&tenant, &scope).await.unwrap();
        held.into_iter().map(|h| format!("{}:{}", h.username, h.platform_role)).collect()
    }
}

fn set(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

/// The whole story on one platform.
async fn replicate_to(app: &TestApp, cloud: Cloud, platform: &str) {
    let [reader, user, admin] = cloud.roles;
    // names are unique: the platforms are shared by every test and backend
    let (ann, bob, mallory) = (unique("ann"), unique("bob"), unique("mallory"));
    if let Some((url, control, record)) = &cloud.directory {
        for u in [&ann, &bob, &mallory] {
            let r = control.post(url).json(&record(u)).send().await.unwrap();
            assert!(r.status().is_success(), "seeding the directory: {}", r.status());
        }
    }
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for u in [&ann, &bob] {
        app.user(u).await;
        app.invite(&app.admin_token, &ws, u, "workspace_member").await;
    }
    // TN1, TN2: the platform and its landing zone
    app.post("/api/v1/platforms", &app.admin_token, cloud.platform.clone()).await.expect(201);
    let shown = app.get(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect(200);
    // TN1: the secrets are named, never shown
    for value in cloud.platform["secrets"].as_object().unwrap().values() {
        assert!(!shown.body.to_string().contains(&format!("\"{}\"", value.as_str().unwrap())), "{}", shown.body);
    }
    app.post(
        &format!("/api/v1/platforms/{platform}/landing-zones"),
        &app.admin_token,
        json!({"identifier": "team", "display_name": "Team", "settings": cloud.landing_zone}),
    )
    .await
    .expect(201);
    // TN3: a tenant, and people bound directly and through a group
    let path = format!("/api/v1/workspaces/{ws}/projects/web/tenants");
    app.post(&path, &app.admin_token, json!({"platform": platform, "landing_zone": "team"})).await.expect(201);
    let group = unique("g");
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": group, "display_name": "Devs"}))
        .await
        .expect(201);
    app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": bob})).await.expect(201);
    app.post(
        &format!("/api/v1/workspaces/{ws}/members"),
        &app.admin_token,
        json!({"group": group, "role": "workspace_member"}),
    )
    .await
    .expect(201);
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let r = app.post(&bindings, &app.admin_token, json!({"user": ann, "role": "project_admin"})).await.expect(201);
    let ann_binding = r.body["id"].as_str().unwrap().to_owned();
    app.post(&bindings, &app.admin_token, json!({"group": group, "role": "project_user"})).await.expect(201);

    // TN4, TN5: replicated; the tenant shows its platform id
    let pass = app.replicate().await;
    assert_eq!((pass.tenants, pass.succeeded), (1, 1), "{pass:?}");
    let t = app.get(&format!("{path}/{platform}"), &app.admin_token).await.expect(200).body;
    assert_eq!(t["status"], "succeeded", "{t}");
    let ext = t["external_id"].as_str().unwrap().to_owned();
    let everyone = [(ann.as_str(), admin), (bob.as_str(), user), (mallory.as_str(), reader), (ann.as_str(), user)];
    let desired = set(&[format!("{ann}:{admin}"), format!("{bob}:{user}")]);
    assert_eq!(cloud.held(&ext, &everyone).await, desired);

    // drift made outside Canopy: ann's role taken away, and (where the
    // platform can show it) a foreign account given a managed role
    let tenant = TenantRef { external_id: ext.clone() };
    let a = PlatformUser { username: ann.clone(), email: format!("{ann}@example.org") };
    cloud.adapter.revoke(&tenant, &a, admin).await.unwrap();
    if cloud.sees_foreign {
        let m = PlatformUser { username: mallory.clone(), email: format!("{mallory}@example.org") };
        cloud.adapter.grant(&tenant, &m, reader).await.unwrap();
    }
    app.post(&format!("{path}/{platform}/replicate"), &app.admin_token, json!({})).await.expect(202);
    app.replicate().await;
    assert_eq!(cloud.held(&ext, &everyone).await, desired, "the drift is repaired");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=tenant_drift_repaired"), &app.admin_token).await;
    let e = &h.expect(200).body["items"][0];
    assert_eq!(e["details"]["restored"], json!([{"account": ann, "platform_role": admin}]), "{e}");
    if cloud.sees_foreign {
        let foreign = (cloud.foreign_as)(&mallory);
        assert_eq!(e["details"]["removed"], json!([{"account": foreign, "platform_role": reader}]), "{e}");
    }

    // AC6, AC10: a removed binding and a deactivated account leave the tenant
    app.delete(&format!("{bindings}/{ann_binding}"), &app.admin_token).await.expect(204);
    app.patch(&format!("/api/v1/users/{bob}"), &app.admin_token, json!({"active": false})).await.expect(200);
    app.replicate().await;
    assert_eq!(cloud.held(&ext, &everyone).await, BTreeSet::new());

    // DL1-DL3: the tenant's deletion, by a platform engineer or by Canopy;
    // someone holds a role in it when it goes
    app.post(&bindings, &app.admin_token, json!({"user": ann, "role": "project_user"})).await.expect(201);
    app.replicate().await;
    let project = format!("/api/v1/workspaces/{ws}/projects/web");
    app.delete(&format!("{path}/{platform}"), &app.admin_token).await.expect(202);
    app.post(&format!("{project}/deletion/confirm"), &app.admin_token, json!({"identifier": "web"})).await.expect(200);
    if cloud.manual_deletion {
        let pending = app.get(&format!("/api/v1/platforms/{platform}/deletions"), &app.admin_token).await.expect(200);
        let id = pending.body["items"][0]["id"].as_str().unwrap().to_owned();
        let before = cloud.held(&ext, &everyone).await;
        assert!(!before.is_empty(), "the tenant holds access when its deletion is confirmed");
        // issue 11, finding 18: confirming a deletion done by hand first revokes
        // what Canopy manages there, since the account may still be alive
        let receipt = app
            .post(&format!("/api/v1/platforms/{platform}/deletions/{id}/confirm"), &app.admin_token, json!({}))
            .await
            .expect(200)
            .body;
        assert_eq!(receipt["platform_error"], Value::Null, "{receipt}");
        let revoked: BTreeSet<String> = receipt["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}:{}", r["account"].as_str().unwrap(), r["platform_role"].as_str().unwrap()))
            .collect();
        assert_eq!(revoked, before, "{receipt}");
        assert!(receipt["revoked"].as_array().unwrap().iter().all(|r| r["confirmed_at"].is_string()));
        assert_eq!(cloud.held(&ext, &everyone).await, BTreeSet::new(), "nobody keeps access");
    } else {
        app.replicate().await;
        assert!(cloud.adapter.observe(&tenant, &Scope::default()).await.is_err(), "the instance is deprovisioned");
    }
    app.get(&format!("{path}/{platform}"), &app.admin_token).await.expect_problem(404, None);
}

async fn tn6_aws_accounts_hold_exactly_the_bound_permission_sets(app: TestApp) {
    let platform = unique("aws");
    let Some(cloud) = aws(&platform) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_kubernetes_namespaces_hold_exactly_the_bound_cluster_roles(app: TestApp) {
    let platform = unique("k8s");
    let Some(cloud) = kubernetes(&platform, false) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_openshift_projects_hold_exactly_the_bound_cluster_roles(app: TestApp) {
    let platform = unique("ocp");
    let Some(cloud) = kubernetes(&platform, true) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_azure_subscriptions_hold_exactly_the_bound_role_assignments(app: TestApp) {
    let platform = unique("az");
    let Some(cloud) = azure(&platform) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_google_cloud_projects_hold_exactly_the_bound_iam_roles(app: TestApp) {
    let platform = unique("gcp");
    let Some(cloud) = gcp(&platform) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_cloud_foundry_spaces_hold_exactly_the_bound_space_roles(app: TestApp) {
    let platform = unique("cf");
    let Some(cloud) = cloud_foundry(&platform) else { return };
    replicate_to(&app, cloud, &platform).await;
}

async fn tn6_service_broker_instances_hold_exactly_the_bound_bindings(app: TestApp) {
    let platform = unique("osb");
    let Some(cloud) = osb(&platform) else { return };
    replicate_to(&app, cloud, &platform).await;
}

/// TN2: a landing zone that lacks what the platform needs leaves the tenant
/// failed with the platform adapter's message, never a 500.
async fn tn5_aws_tenant_without_account_email_fails_with_the_reason(app: TestApp) {
    let platform = unique("aws");
    let Some(cloud) = aws(&platform) else { return };
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    app.post("/api/v1/platforms", &app.admin_token, cloud.platform).await.expect(201);
    app.post(
        &format!("/api/v1/platforms/{platform}/landing-zones"),
        &app.admin_token,
        json!({"identifier": "bare", "display_name": "Bare", "settings": {}}),
    )
    .await
    .expect(201);
    let path = format!("/api/v1/workspaces/{ws}/projects/web/tenants");
    app.post(&path, &app.admin_token, json!({"platform": platform, "landing_zone": "bare"})).await.expect(201);
    app.replicate().await;
    let t = app.get(&format!("{path}/{platform}"), &app.admin_token).await.expect(200).body;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["last_error"].as_str().unwrap().contains("account_email"), "{t}");
}

canopy_testkit::backend_tests!(
    tn6_aws_accounts_hold_exactly_the_bound_permission_sets,
    tn6_azure_subscriptions_hold_exactly_the_bound_role_assignments,
    tn6_google_cloud_projects_hold_exactly_the_bound_iam_roles,
    tn6_cloud_foundry_spaces_hold_exactly_the_bound_space_roles,
    tn6_kubernetes_namespaces_hold_exactly_the_bound_cluster_roles,
    tn6_openshift_projects_hold_exactly_the_bound_cluster_roles,
    tn6_service_broker_instances_hold_exactly_the_bound_bindings,
    tn5_aws_tenant_without_account_email_fails_with_the_reason,
);
