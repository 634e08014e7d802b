//! TN3-TN5, AC7, AC10 (the tenant side), PR2: tenants on a real Keystone,
//! replicated by the engine, which the tests drive with `app.replicate()`.
//! What Keystone holds is read with the Keystone adapter, which its own test
//! checks against Keystone.

use std::collections::BTreeSet;

use canopy_domain::clock::Clock;
use canopy_platforms::keystone::{Keystone, KeystoneConfig};
use canopy_platforms::{Platform, PlatformUser, TenantRef};
use canopy_testkit::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

/// A Keystone platform's registration and a client to look at what it holds.
pub struct Os {
    pub url: String,
    pub password: String,
}

impl Os {
    pub fn get() -> Option<Os> {
        canopy_testkit::keystone().map(|(url, password)| Os { url, password })
    }

    pub fn platform(&self, identifier: &str, domain: &str) -> Value {
        json!({"identifier": identifier, "type": "openstack",
            "settings": {"auth_url": self.url, "domain": domain},
            "secrets": {"username": "admin", "password": self.password},
            "role_mapping": {"project_reader": "reader", "project_user": "member", "project_admin": "admin"}})
    }

    pub fn client(&self) -> Keystone {
        Keystone::new(KeystoneConfig {
            auth_url: self.url.clone(),
            domain: "Default".into(),
            username: "admin".into(),
            password: self.password.clone(),
        })
        .unwrap()
    }

    /// What the tenant holds on Keystone, as `account:role`.
    pub async fn held(&self, external_id: &str) -> BTreeSet<String> {
        let tenant = TenantRef { external_id: external_id.to_owned() };
        self.client()
            .observe(&tenant, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|h| format!("{}:{}", h.username, h.platform_role))
            .collect()
    }

    /// Call Keystone's API directly, as an operator would outside Canopy.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let http = reqwest::Client::new();
        let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": self.password}}}, "scope": {"system": {"all": true}}}});
        let res = http.post(format!("{}/auth/tokens", self.url)).json(&auth).send().await.unwrap();
        let token = res.headers()["x-subject-token"].to_str().unwrap().to_owned();
        let mut req = http.request(method, format!("{}{path}", self.url)).header("X-Auth-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A Keystone domain for a second platform's tenants (made once, found after).
    pub async fn domain(&self, name: &str) {
        let (status, body) = self
            .call(reqwest::Method::POST, "/domains", Some(json!({"domain": {"name": name, "enabled": true}})))
            .await;
        assert!(status == 201 || status == 409, "creating domain {name}: {status} {body}");
    }
}

/// Names unique across tests and backends: they share one Keystone.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..10])
}

/// A workspace (owned by the admin) with a project and the given members.
async fn setup(app: &TestApp, members: &[&str]) -> (String, String) {
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for m in members {
        app.user(m).await;
        app.invite(&app.admin_token, &ws, m, "workspace_member").await;
    }
    (ws, "web".to_owned())
}

fn tenants_path(ws: &str, project: &str) -> String {
    format!("/api/v1/workspaces/{ws}/projects/{project}/tenants")
}

async fn tenant(app: &TestApp, ws: &str, project: &str, platform: &str) -> Value {
    app.get(&format!("{}/{platform}", tenants_path(ws, project)), &app.admin_token).await.expect(200).body
}

async fn bind(app: &TestApp, ws: &str, project: &str, subject: Value, role: &str) -> String {
    let mut body = subject;
    body["role"] = json!(role);
    let r = app.post(&format!("/api/v1/workspaces/{ws}/projects/{project}/bindings"), &app.admin_token, body).await;
    r.expect(201).body["id"].as_str().unwrap().to_owned()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn history_kinds(app: &TestApp, ws: &str) -> Vec<String> {
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?limit=500"), &app.admin_token).await.expect(200);
    h.body["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

async fn tn3_tenant_is_created_on_the_platform_and_a_second_is_refused(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann"]).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let path = tenants_path(&ws, &project);
    let r = app.post(&path, &app.admin_token, json!({"platform": platform})).await.expect(201);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["external_id"], Value::Null);
    let name = r.body["name"].as_str().unwrap();
    assert!(name.starts_with(&format!("{ws}-{project}-")) && name.len() == ws.len() + project.len() + 10, "{name}");
    // TN3: a second tenant on the same platform is refused, nothing written
    let second = app.post(&path, &app.admin_token, json!({"platform": platform})).await;
    second.expect_problem(409, Some("platform"));
    assert_eq!(app.get(&path, &app.admin_token).await.expect(200).body["items"].as_array().unwrap().len(), 1);

    let pass = app.replicate().await;
    assert_eq!((pass.tenants, pass.succeeded), (1, 1));
    let t = tenant(&app, &ws, &project, &platform).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let external_id = t["external_id"].as_str().unwrap().to_owned();
    assert!(os.held(&external_id).await.is_empty(), "nobody is bound yet");
    // PR2: the project's page lists its tenants with their status
    let page = app.get(&format!("/api/v1/workspaces/{ws}/projects/{project}"), &app.admin_token).await.expect(200);
    assert_eq!(page.body["tenants"][0]["platform"], json!(platform));
    assert_eq!(page.body["tenants"][0]["status"], "succeeded");
    let kinds = history_kinds(&app, &ws).await;
    assert!(
        kinds.contains(&"tenant_created".to_owned()) && kinds.contains(&"tenant_replicated".to_owned()),
        "{kinds:?}"
    );
    // a member sees the tenant but may not add one or replicate it
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.get(&path, &ann).await.expect(200);
    app.post(&format!("{path}/{platform}/replicate"), &ann, json!({})).await.expect_problem(403, None);
    // the platform cannot go while it holds the tenant
    app.delete(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect_problem(409, Some("platform"));
    // deleting the project now starts a deletion that waits for confirmation (DL1)
    let r = app.delete(&format!("/api/v1/workspaces/{ws}/projects/{project}"), &app.admin_token).await.expect(202);
    assert_eq!(r.body["state"], "awaiting_confirmation");
}

async fn tn3_bad_tenant_requests_are_refused_naming_the_field(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &[]).await;
    let platform = unique("os");
    let mut body = os.platform(&platform, "Default");
    body["landing_zone_required"] = json!(true);
    app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
    let path = tenants_path(&ws, &project);
    app.post(&path, &app.admin_token, json!({"platform": "nope"})).await.expect_problem(422, Some("platform"));
    app.post(&path, &app.admin_token, json!({"platform": platform})).await.expect_problem(422, Some("landing_zone"));
    app.post(&path, &app.admin_token, json!({"platform": platform, "landing_zone": "nope"}))
        .await
        .expect_problem(422, Some("landing_zone"));
    app.post(&path, &app.admin_token, json!({"platfrom": platform})).await.expect_problem(422, None);
    assert!(app.get(&path, &app.admin_token).await.expect(200).body["items"].as_array().unwrap().is_empty());
    app.get(&format!("{path}/{platform}"), &app.admin_token).await.expect_problem(404, None);
    // with its landing zone the tenant is made in the zone's domain (TN2)
    let domain = unique("d");
    os.domain(&domain).await;
    app.post(
        &format!("/api/v1/platforms/{platform}/landing-zones"),
        &app.admin_token,
        json!({"identifier": "team", "display_name": "Team", "settings": {"domain": domain}}),
    )
    .await
    .expect(201);
    app.post(&path, &app.admin_token, json!({"platform": platform, "landing_zone": "team"})).await.expect(201);
    app.replicate().await;
    let t = tenant(&app, &ws, &project, &platform).await;
    assert_eq!((t["status"].as_str(), t["landing_zone"].as_str()), (Some("succeeded"), Some("team")), "{t}");
    app.delete(&format!("/api/v1/platforms/{platform}/landing-zones/team"), &app.admin_token)
        .await
        .expect_problem(409, Some("landing_zone"));
}

async fn tn4_group_member_gets_role_in_every_tenant(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann", "bob"]).await;
    let (a, b) = (unique("osa"), unique("osb"));
    let domain = unique("d");
    os.domain(&domain).await;
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&a, "Default")).await.expect(201);
    let mut second = os.platform(&b, &domain);
    second["role_mapping"] = json!({"project_user": "reader"}); // a different mapping on the second platform
    app.post("/api/v1/platforms", &app.admin_token, second).await.expect(201);
    let path = tenants_path(&ws, &project);
    app.post(&path, &app.admin_token, json!({"platform": a})).await.expect(201);
    app.post(&path, &app.admin_token, json!({"platform": b})).await.expect(201);
    let group = unique("g");
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": group, "display_name": "Devs"}))
        .await
        .expect(201);
    app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": "bob"})).await.expect(201);
    app.post(
        &format!("/api/v1/workspaces/{ws}/members"),
        &app.admin_token,
        json!({"group": group, "role": "workspace_member"}),
    )
    .await
    .expect(201);
    bind(&app, &ws, &project, json!({"group": group}), "project_user").await;
    bind(&app, &ws, &project, json!({"user": "ann"}), "project_admin").await;
    let pass = app.replicate().await;
    assert_eq!(pass.succeeded, 2, "{pass:?}");
    let ta = tenant(&app, &ws, &project, &a).await["external_id"].as_str().unwrap().to_owned();
    let tb = tenant(&app, &ws, &project, &b).await["external_id"].as_str().unwrap().to_owned();
    assert_ne!(ta, tb);
    assert_eq!(os.held(&ta).await, set(&["ann:admin", "bob:member"]));
    assert_eq!(os.held(&tb).await, set(&["bob:reader"]), "the second platform maps only project_user");
    // AC3: a member who joins later gets it too, one who leaves loses it, in every tenant
    app.user("cy").await;
    app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": "cy"})).await.expect(201);
    app.delete(&format!("/api/v1/groups/{group}/members/bob"), &app.admin_token).await.expect(204);
    app.replicate().await;
    assert_eq!(os.held(&ta).await, set(&["ann:admin", "cy:member"]));
    assert_eq!(os.held(&tb).await, set(&["cy:reader"]));
    // nothing left to do: a second pass makes no platform change
    let again = app.post(&format!("{path}/{a}/replicate"), &app.admin_token, json!({})).await.expect(202);
    assert_eq!(again.body["status"], "pending");
    let pass = app.replicate().await;
    assert_eq!((pass.tenants, pass.granted, pass.revoked), (1, 0, 0), "{pass:?}");
    assert_eq!(tenant(&app, &ws, &project, &a).await["status"], "succeeded");
}

async fn ac7_ended_binding_leaves_every_tenant_and_returns_when_added_again(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann"]).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    app.post(&tenants_path(&ws, &project), &app.admin_token, json!({"platform": platform})).await.expect(201);
    let id = bind(&app, &ws, &project, json!({"user": "ann"}), "project_reader").await;
    app.replicate().await;
    let ext = tenant(&app, &ws, &project, &platform).await["external_id"].as_str().unwrap().to_owned();
    assert_eq!(os.held(&ext).await, set(&["ann:reader"]));
    // AC5: a changed role follows
    let bindings = format!("/api/v1/workspaces/{ws}/projects/{project}/bindings");
    app.patch(&format!("{bindings}/{id}"), &app.admin_token, json!({"role": "project_user"})).await.expect(200);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member"]));
    // a changed role mapping takes the old platform role away, and a removed one too
    let remap =
        json!({"role_mapping": {"project_reader": "reader", "project_user": "admin", "project_admin": "admin"}});
    app.patch(&format!("/api/v1/platforms/{platform}"), &app.admin_token, remap).await.expect(200);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:admin"]));
    let unmapped = json!({"role_mapping": {"project_reader": "reader"}});
    app.patch(&format!("/api/v1/platforms/{platform}"), &app.admin_token, unmapped).await.expect(200);
    app.replicate().await;
    assert!(os.held(&ext).await.is_empty());
    let restore =
        json!({"role_mapping": {"project_reader": "reader", "project_user": "member", "project_admin": "admin"}});
    app.patch(&format!("/api/v1/platforms/{platform}"), &app.admin_token, restore).await.expect(200);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member"]));
    // AC6: removed, then added again
    app.delete(&format!("{bindings}/{id}"), &app.admin_token).await.expect(204);
    app.replicate().await;
    assert!(os.held(&ext).await.is_empty());
    bind(&app, &ws, &project, json!({"user": "ann"}), "project_user").await;
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member"]));
    // AC7: an expiring binding leaves the tenant once its instant passed
    app.user("bea").await;
    app.invite(&app.admin_token, &ws, "bea", "workspace_member").await;
    let expires = app.clock.now() + time::Duration::hours(1);
    let body = json!({"user": "bea", "role": "project_reader",
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap()});
    app.post(&bindings, &app.admin_token, body).await.expect(201);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member", "bea:reader"]));
    let end_due = || canopy_engine::expiry::end_due(&app.store, app.clock.as_ref());
    assert_eq!(end_due().await.unwrap(), 0, "nothing expired yet");
    app.clock.advance(time::Duration::minutes(61));
    assert_eq!(end_due().await.unwrap(), 1);
    assert_eq!(end_due().await.unwrap(), 0, "a binding is ended once");
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member"]));
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=binding_expired"), &app.admin_token).await;
    let e = &h.expect(200).body["items"][0];
    assert_eq!((e["initiator"]["name"].as_str(), e["details"]["subject"].as_str()), (Some("expiry"), Some("user:bea")));
    // the revocation was recorded with the instant the platform confirmed it
    let h =
        app.get(&format!("/api/v1/workspaces/{ws}/history?kind=tenant_replicated&limit=50"), &app.admin_token).await;
    let revoked: Vec<&Value> =
        h.body["items"].as_array().unwrap().iter().flat_map(|e| e["details"]["revoked"].as_array().unwrap()).collect();
    assert!(revoked.iter().any(|r| r["account"] == "ann" && r["confirmed_at"].is_string()), "{revoked:?}");
}

async fn ac10_deactivated_user_is_removed_from_every_tenant(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann", "bob"]).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    app.post(&tenants_path(&ws, &project), &app.admin_token, json!({"platform": platform})).await.expect(201);
    bind(&app, &ws, &project, json!({"user": "ann"}), "project_user").await;
    bind(&app, &ws, &project, json!({"user": "bob"}), "project_user").await;
    app.replicate().await;
    let ext = tenant(&app, &ws, &project, &platform).await["external_id"].as_str().unwrap().to_owned();
    assert_eq!(os.held(&ext).await, set(&["ann:member", "bob:member"]));
    app.patch("/api/v1/users/ann", &app.admin_token, json!({"active": false})).await.expect(200);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["bob:member"]));
    app.patch("/api/v1/users/ann", &app.admin_token, json!({"active": true})).await.expect(200);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member", "bob:member"]));
    // a deleted account goes too
    app.delete("/api/v1/users/bob", &app.admin_token).await.expect(204);
    app.replicate().await;
    assert_eq!(os.held(&ext).await, set(&["ann:member"]));
}

async fn tn4_reconcile_repairs_drift_and_records_each_repair(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann", "bob"]).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let path = tenants_path(&ws, &project);
    app.post(&path, &app.admin_token, json!({"platform": platform})).await.expect(201);
    bind(&app, &ws, &project, json!({"user": "ann"}), "project_user").await;
    app.replicate().await;
    let ext = tenant(&app, &ws, &project, &platform).await["external_id"].as_str().unwrap().to_owned();
    // drift made outside Canopy: ann's role taken away, a foreign account given a managed role
    let ks = os.client();
    let t = TenantRef { external_id: ext.clone() };
    let mallory = unique("mallory");
    ks.revoke(&t, &PlatformUser { username: "ann".into(), email: String::new() }, "member").await.unwrap();
    let m = PlatformUser { username: mallory.clone(), email: format!("{mallory}@example.org") };
    ks.grant(&t, &m, "admin").await.unwrap();
    let held = os.held(&ext).await;
    assert!(!held.contains("ann:member") && held.contains(&format!("{mallory}:admin")));
    // the plan shows it without changing anything
    let plan = app.get(&format!("{path}/{platform}/plan"), &app.admin_token).await.expect(200);
    assert_eq!(plan.body["drift_missing"], json!([{"account": "ann", "platform_role": "member"}]), "{}", plan.body);
    assert_eq!(plan.body["drift_unexpected"], json!([{"account": mallory, "platform_role": "admin"}]));
    assert_eq!(plan.body["grant"], json!([]));
    assert_eq!(os.held(&ext).await, held, "the plan changed nothing");
    // nothing is dirty; the periodic reconcile marks the tenant once it is due
    assert_eq!(app.replicate().await.tenants, 0);
    assert_eq!(app.replicator.schedule_reconcile().await.unwrap(), 0, "reconciled just now");
    app.clock.advance(time::Duration::hours(2));
    assert_eq!(app.replicator.schedule_reconcile().await.unwrap(), 1);
    app.replicate().await;
    let after = os.held(&ext).await;
    assert!(after.contains("ann:member") && !after.contains(&format!("{mallory}:admin")), "{after:?}");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=tenant_drift_repaired"), &app.admin_token).await;
    let e = &h.body["items"][0];
    assert_eq!(e["initiator"]["name"], "replication");
    assert_eq!(e["details"]["restored"], json!([{"account": "ann", "platform_role": "member"}]));
    assert_eq!(e["details"]["removed"], json!([{"account": mallory, "platform_role": "admin"}]));

    // a platform that only reports drift leaves it and records it
    app.patch(&format!("/api/v1/platforms/{platform}"), &app.admin_token, json!({"drift_policy": "report"}))
        .await
        .expect(200);
    app.replicate().await;
    ks.revoke(&t, &PlatformUser { username: "ann".into(), email: String::new() }, "member").await.unwrap();
    bind(&app, &ws, &project, json!({"user": "bob"}), "project_reader").await; // Canopy's own change still applies
    app.replicate().await;
    let held = os.held(&ext).await;
    assert!(!held.contains("ann:member") && held.contains("bob:reader"), "{held:?}");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=tenant_drift_detected"), &app.admin_token).await;
    assert_eq!(h.body["items"][0]["details"]["missing"], json!([{"account": "ann", "platform_role": "member"}]));
}

async fn tn5_failed_tenant_shows_the_platform_error_and_recovers(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws, project) = setup(&app, &["ann"]).await;
    let platform = unique("os");
    let mut body = os.platform(&platform, "Default");
    body["secrets"]["password"] = json!("wrong-password");
    app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
    let path = tenants_path(&ws, &project);
    app.post(&path, &app.admin_token, json!({"platform": platform})).await.expect(201);
    bind(&app, &ws, &project, json!({"user": "ann"}), "project_user").await;
    let pass = app.replicate().await;
    assert_eq!(pass.failed, 1);
    let t = tenant(&app, &ws, &project, &platform).await;
    assert_eq!(t["status"], "failed");
    let error = t["last_error"].as_str().unwrap();
    assert!(error.contains("Keystone answered 401"), "the platform's own message: {error}");
    // refused credentials are not retried on their own
    assert_eq!(t["next_attempt_at"], Value::Null, "{t}");
    let kinds = history_kinds(&app, &ws).await;
    assert!(kinds.contains(&"tenant_replication_failed".to_owned()));
    // fixing the credentials replicates the platform's tenants again
    app.patch(
        &format!("/api/v1/platforms/{platform}"),
        &app.admin_token,
        json!({"secrets": {"password": os.password}}),
    )
    .await
    .expect(200);
    // the change is due at once: from when it was made, not from 1970
    let t = tenant(&app, &ws, &project, &platform).await;
    assert_eq!(t["status"], "failed");
    let due = time::OffsetDateTime::parse(
        t["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(due <= app.clock.now() && due > app.clock.now() - time::Duration::minutes(1), "{t}");
    app.replicate().await;
    let t = tenant(&app, &ws, &project, &platform).await;
    assert_eq!((t["status"].as_str(), &t["last_error"]), (Some("succeeded"), &Value::Null), "{t}");
    let ext = t["external_id"].as_str().unwrap();
    assert_eq!(os.held(ext).await, set(&["ann:member"]));

    // an unreachable platform is retried with backoff, not before
    let down = unique("down");
    let mut body = os.platform(&down, "Default");
    body["settings"]["auth_url"] = json!("http://127.0.0.1:9/v3");
    app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
    app.post(&path, &app.admin_token, json!({"platform": down})).await.expect(201);
    assert_eq!(app.replicate().await.failed, 1);
    let t = tenant(&app, &ws, &project, &down).await;
    assert_eq!(t["status"], "failed");
    assert!(t["last_error"].as_str().unwrap().contains("cannot reach Keystone"), "{t}");
    // the tenant says when it is tried again: after its backoff
    let next = time::OffsetDateTime::parse(
        t["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let now = app.clock.now();
    assert!(next > now && next <= now + time::Duration::seconds(6), "{next} after {now}");
    assert_eq!(app.replicate().await.tenants, 0, "not due before its backoff");
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(app.replicate().await.failed, 1, "retried after the backoff");
    let kinds = history_kinds(&app, &ws).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "tenant_replication_failed").count(),
        2,
        "one event per distinct failure, not per retry"
    );
}

/// Taking access away goes before other replication work: a deactivated
/// account's tenants are leased first, even behind a backlog.
async fn ac10_deactivation_is_replicated_before_other_work(app: TestApp) {
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    let platform = unique("os");
    let body = json!({"identifier": platform, "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "pw"}, "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
    app.user("ann").await;
    app.invite(&app.admin_token, &ws, "ann", "workspace_member").await;
    for p in ["a1", "a2", "a3", "z9"] {
        app.project(&app.admin_token, &ws, p).await;
        app.post(&tenants_path(&ws, p), &app.admin_token, json!({"platform": platform})).await.expect(201);
    }
    bind(&app, &ws, "z9", json!({"user": "ann"}), "project_user").await;
    // four tenants wait; ann is deactivated: her one tenant is taken first
    app.patch("/api/v1/users/ann", &app.admin_token, json!({"active": false})).await.expect(200);
    let now = app.clock.now();
    let first = app.store.claim_tenants("test", now, now + time::Duration::minutes(1), 1).await.unwrap();
    let mut tx = app.store.read().await.unwrap();
    let t = tx.tenant_by_id(first[0].tenant_id).await.unwrap().unwrap();
    let project = tx.project_by_id(t.project_id).await.unwrap().unwrap();
    assert_eq!(project.identifier, "z9");
}

/// Item 8 of the replication issue: 1 % of the assignments removed and as
/// many foreign ones added directly on the platform (10 tenants, 100
/// assignments: one of each); one reconcile restores exactly the desired
/// state and records each repair.
async fn tn4_one_reconcile_repairs_one_percent_drift_and_records_each_repair(app: TestApp) {
    const TENANTS: usize = 10;
    const USERS: usize = 10;
    let Some(os) = Os::get() else { return };
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let users: Vec<String> = (0..USERS).map(|_| unique("u")).collect();
    for u in &users {
        app.user(u).await;
        app.invite(&app.admin_token, &ws, u, "workspace_member").await;
    }
    let projects: Vec<String> = (0..TENANTS).map(|i| format!("p{i}")).collect();
    for p in &projects {
        app.project(&app.admin_token, &ws, p).await;
        app.post(&tenants_path(&ws, p), &app.admin_token, json!({"platform": platform})).await.expect(201);
        for u in &users {
            bind(&app, &ws, p, json!({"user": u}), "project_user").await;
        }
    }
    app.replicate().await;
    let mut ext = Vec::new();
    for p in &projects {
        ext.push(tenant(&app, &ws, p, &platform).await["external_id"].as_str().unwrap().to_owned());
    }
    let want: BTreeSet<String> = users.iter().map(|u| format!("{u}:member")).collect();
    // 1 % of 100: one assignment removed and one foreign added, outside Canopy
    let ks = os.client();
    let pick = |n: usize| (Uuid::new_v4().as_u128() % n as u128) as usize;
    let gone = users[pick(USERS)].clone();
    let gone_user = PlatformUser { username: gone.clone(), email: String::new() };
    ks.revoke(&TenantRef { external_id: ext[pick(TENANTS)].clone() }, &gone_user, "member").await.unwrap();
    let foreign = unique("foreign");
    let user = PlatformUser { username: foreign.clone(), email: format!("{foreign}@example.org") };
    ks.grant(&TenantRef { external_id: ext[pick(TENANTS)].clone() }, &user, "admin").await.unwrap();
    // one reconcile: every tenant is due after the interval
    app.clock.advance(time::Duration::hours(2));
    assert_eq!(app.replicator.schedule_reconcile().await.unwrap(), TENANTS as u64);
    let pass = app.replicate().await;
    assert_eq!(pass.tenants, TENANTS, "{pass:?}");
    for e in &ext {
        assert_eq!(os.held(e).await, want, "tenant {e} holds exactly the desired assignments");
    }
    let h = app
        .get(&format!("/api/v1/workspaces/{ws}/history?kind=tenant_drift_repaired&limit=100"), &app.admin_token)
        .await;
    let events = h.expect(200).body["items"].as_array().unwrap().clone();
    let all = |key: &str| -> Vec<String> {
        events
            .iter()
            .flat_map(|e| e["details"][key].as_array().unwrap().clone())
            .map(|a| format!("{}:{}", a["account"].as_str().unwrap(), a["platform_role"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(all("restored"), [format!("{gone}:member")], "each repair recorded once");
    assert_eq!(all("removed"), [format!("{foreign}:admin")]);
}

canopy_testkit::backend_tests!(
    tn4_one_reconcile_repairs_one_percent_drift_and_records_each_repair,
    ac10_deactivation_is_replicated_before_other_work,
    tn3_tenant_is_created_on_the_platform_and_a_second_is_refused,
    tn3_bad_tenant_requests_are_refused_naming_the_field,
    tn4_group_member_gets_role_in_every_tenant,
    ac7_ended_binding_leaves_every_tenant_and_returns_when_added_again,
    ac10_deactivated_user_is_removed_from_every_tenant,
    tn4_reconcile_repairs_drift_and_records_each_repair,
    tn5_failed_tenant_shows_the_platform_error_and_recovers,
);
