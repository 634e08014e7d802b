//! AC7 and the rest of the access lifecycle: bindings end by themselves when
//! they expire. The expiry job is driven with its single step and the
//! settable clock; `nodes.rs` runs it in a real `canopy serve` after downtime.

use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_engine::expiry::{LOOK_AGAIN, end_due, until_next};
use canopy_testkit::TestApp;
use serde_json::{Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::tenants::{Os, unique};

fn at(app: &TestApp, from_now: Duration) -> String {
    (app.clock.now() + from_now).format(&Rfc3339).unwrap()
}

async fn ac7_expiry_job_ends_each_expired_binding_once_and_wakes_at_the_next(app: TestApp) {
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for u in ["ann", "bob"] {
        app.user(u).await;
        app.invite(&app.admin_token, &ws, u, "workspace_member").await;
    }
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), LOOK_AGAIN, "nothing expires");
    let body = json!({"user": "ann", "role": "project_user", "expires_at": at(&app, Duration::hours(2))});
    app.post(&bindings, &app.admin_token, body).await.expect(201);
    let body = json!({"user": "bob", "role": "project_reader", "expires_at": at(&app, Duration::seconds(3))});
    let bob = app.post(&bindings, &app.admin_token, body).await.expect(201).body["id"].as_str().unwrap().to_owned();
    app.post(&bindings, &app.admin_token, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    // the job sleeps until the next expiration, not a coarse tick
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), StdDuration::from_secs(3));
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 0);

    app.clock.advance(Duration::seconds(4));
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), StdDuration::ZERO, "bob's is due");
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 1);
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 0, "a binding is ended once");
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), LOOK_AGAIN, "ann's is hours away");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=binding_expired"), &app.admin_token).await;
    let events = h.expect(200).body["items"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["initiator"]["kind"], "system");
    assert_eq!(events[0]["initiator"]["name"], "expiry");
    assert_eq!(
        (events[0]["details"]["subject"].as_str(), events[0]["details"]["role"].as_str()),
        (Some("user:bob"), Some("project_reader"))
    );
    // the ended binding stays, no longer in force, and can be extended
    let list = app.get(&bindings, &app.admin_token).await.expect(200).body;
    let row = list["items"].as_array().unwrap().iter().find(|b| b["id"] == bob.as_str()).unwrap().clone();
    assert_eq!(row["in_force"], false, "{row}");
    // a change that keeps the expiration does not end it a second time
    app.patch(&format!("{bindings}/{bob}"), &app.admin_token, json!({})).await.expect(200);
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 0, "ended once, whatever else changes");
    app.patch(&format!("{bindings}/{bob}"), &app.admin_token, json!({"expires_at": at(&app, Duration::hours(1))}))
        .await
        .expect(200);
    let list = app.get(&bindings, &app.admin_token).await.expect(200).body;
    let row: Value = list["items"].as_array().unwrap().iter().find(|b| b["id"] == bob.as_str()).unwrap().clone();
    assert_eq!(row["in_force"], true, "{row}");

    // after a long stop both pass; each is ended at the first pass
    app.clock.advance(Duration::days(3));
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 2);
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await; // days later: a new session
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=binding_expired"), &admin).await;
    assert_eq!(h.expect(200).body["items"].as_array().unwrap().len(), 3);
}

/// A workspace with project `web`, its tenant on a Keystone platform, and
/// the platform's identifier.
async fn workspace_with_tenant(app: &TestApp, os: &Os, ws: &str, project: &str) -> String {
    app.workspace(&app.admin_token, ws).await;
    app.project(&app.admin_token, ws, project).await;
    let platform = unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let tenants = format!("/api/v1/workspaces/{ws}/projects/{project}/tenants");
    app.post(&tenants, &app.admin_token, json!({"platform": platform})).await.expect(201);
    platform
}

async fn external_id(app: &TestApp, ws: &str, project: &str, platform: &str) -> String {
    let t = app.get(&format!("/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}"), &app.admin_token).await;
    t.expect(200).body["external_id"].as_str().unwrap().to_owned()
}

async fn held(os: &Os, ext: &str, account: &str) -> Vec<String> {
    let tenant = canopy_platforms::TenantRef { external_id: ext.to_owned() };
    let held = canopy_platforms::Platform::observe(&os.client(), &tenant, &Default::default()).await.unwrap();
    held.into_iter().filter(|h| h.username == account).map(|h| h.platform_role).collect()
}

async fn ad3_emergency_grant_binds_until_expiry_and_reaches_tenants_first(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let ws = unique("w");
    let platform = workspace_with_tenant(&app, &os, &ws, "web").await;
    app.project(&app.admin_token, &ws, "api").await;
    let other = format!("/api/v1/workspaces/{ws}/projects/api/tenants");
    app.post(&other, &app.admin_token, json!({"platform": platform})).await.expect(201);
    app.replicate().await;
    let eve = unique("eve");
    app.user(&eve).await;
    let grant = |body: Value| app.post("/api/v1/admin/emergency/grant", &app.admin_token, body);
    let valid = json!({"user": eve, "workspace": ws, "project": "web", "role": "project_admin",
        "expires_at": at(&app, Duration::hours(4)), "justification": "incident 42: database down"});
    // bad input: each names its field, and nothing is written
    for (key, value, field) in [
        ("expires_at", Value::Null, "expires_at"),
        ("expires_at", json!(at(&app, Duration::hours(-1))), "expires_at"),
        ("justification", json!("  "), "justification"),
        ("role", json!("no_such_role"), "role"),
        ("project", json!("nope"), "project"),
        ("user", json!("nobody-at-all"), "user"),
    ] {
        let mut body = valid.clone();
        body[key] = value;
        grant(body).await.expect_problem(422, Some(field));
    }
    let members = app.get(&format!("/api/v1/workspaces/{ws}/members"), &app.admin_token).await.expect(200);
    assert!(!members.body.to_string().contains(&eve), "nothing half written: {}", members.body);

    // another tenant is dirty already; the emergency one is taken first
    app.post(&format!("{other}/{platform}/replicate"), &app.admin_token, json!({})).await.expect(202);
    let r = grant(valid.clone()).await.expect(201);
    assert_eq!((r.body["member_added"].as_bool(), r.body["role"].as_str()), (Some(true), Some("project_admin")));
    let now = app.clock.now();
    let first = app.store.claim_tenants("test", now, now + Duration::minutes(1), 1).await.unwrap();
    let mut tx = app.store.read().await.unwrap();
    let t = tx.tenant_by_id(first[0].tenant_id).await.unwrap().unwrap();
    assert_eq!(tx.project_by_id(t.project_id).await.unwrap().unwrap().identifier, "web");
    drop(tx);
    app.clock.advance(Duration::minutes(2)); // the test's lease lapses
    app.replicate().await;
    let ext = external_id(&app, &ws, "web", &platform).await;
    assert_eq!(held(&os, &ext, &eve).await, ["admin"]);
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=emergency_access_granted"), &app.admin_token).await;
    let e = &h.expect(200).body["items"][0];
    assert_eq!(e["details"]["justification"], "incident 42: database down");
    // granting again extends rather than failing
    let mut longer = valid.clone();
    longer["expires_at"] = json!(at(&app, Duration::hours(8)));
    let r = grant(longer.clone()).await.expect(201);
    assert_eq!(r.body["member_added"], false);
    // and never shortens access held already
    let mut shorter = valid.clone();
    shorter["expires_at"] = json!(at(&app, Duration::hours(2)));
    assert_eq!(grant(shorter).await.expect(201).body["expires_at"], longer["expires_at"]);

    // it ends by itself
    app.clock.advance(Duration::hours(9));
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 1);
    app.replicate().await;
    assert!(held(&os, &ext, &eve).await.is_empty());
}

async fn ad4_emergency_revocation_removes_everything_and_reports_each_tenant(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (ws1, ws2) = (unique("w"), unique("w"));
    let p1 = workspace_with_tenant(&app, &os, &ws1, "web").await;
    let p2 = workspace_with_tenant(&app, &os, &ws2, "api").await;
    let mal = unique("mal");
    let mal_token = app.user(&mal).await;
    app.user("ann").await;
    app.invite(&app.admin_token, &ws1, &mal, "workspace_manager").await;
    let group = unique("ops");
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": group, "display_name": "Ops"})).await.expect(201);
    for u in [mal.as_str(), "ann"] {
        app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": u})).await.expect(201);
    }
    app.post(
        &format!("/api/v1/workspaces/{ws2}/members"),
        &app.admin_token,
        json!({"group": group, "role": "workspace_member"}),
    )
    .await
    .expect(201);
    let b1 = format!("/api/v1/workspaces/{ws1}/projects/web/bindings");
    let b2 = format!("/api/v1/workspaces/{ws2}/projects/api/bindings");
    app.post(&b1, &app.admin_token, json!({"user": mal, "role": "project_user"})).await.expect(201);
    app.post(&b2, &app.admin_token, json!({"group": group, "role": "project_reader"})).await.expect(201);
    app.post(&b2, &app.admin_token, json!({"user": mal, "role": "project_admin"})).await.expect(201);
    app.replicate().await;
    let (e1, e2) = (external_id(&app, &ws1, "web", &p1).await, external_id(&app, &ws2, "api", &p2).await);
    assert_eq!(held(&os, &e1, &mal).await, ["member"]);
    assert_eq!(held(&os, &e2, &mal).await, ["admin", "reader"]);

    // another tenant waits; the revoked person's tenants are taken first
    app.project(&app.admin_token, &ws1, "other").await;
    let other = format!("/api/v1/workspaces/{ws1}/projects/other/tenants");
    app.post(&other, &app.admin_token, json!({"platform": p1})).await.expect(201);
    let revoke = |body: Value| app.post("/api/v1/admin/emergency/revoke", &app.admin_token, body);
    revoke(json!({"user": "nobody-at-all"})).await.expect_problem(422, Some("user"));
    revoke(json!({"user": "admin"})).await.expect_problem(422, Some("user"));
    let r = revoke(json!({"user": mal, "justification": "stolen laptop"})).await.expect(201).body;
    assert_eq!(r["deactivated"], true);
    assert_eq!(r["memberships"], json!([{"workspace": ws1, "role": "workspace_manager"}]));
    assert_eq!(r["groups"], json!([group]));
    let mut bindings: Vec<String> = r["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{}/{}/{}", b["workspace"], b["project"], b["role"]))
        .collect();
    bindings.sort();
    let mut want = vec![format!("\"{ws1}\"/\"web\"/\"project_user\""), format!("\"{ws2}\"/\"api\"/\"project_admin\"")];
    want.sort();
    assert_eq!(bindings, want);
    assert_eq!(r["tenants"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["complete"], false, "nothing confirmed yet: {r}");
    let now = app.clock.now();
    let first = app.store.claim_tenants("test", now, now + Duration::minutes(1), 2).await.unwrap();
    let mut tx = app.store.read().await.unwrap();
    for claim in &first {
        let t = tx.tenant_by_id(claim.tenant_id).await.unwrap().unwrap();
        assert_ne!(tx.project_by_id(t.project_id).await.unwrap().unwrap().identifier, "other", "urgent first");
    }
    drop(tx);
    app.clock.advance(Duration::minutes(2)); // the test's leases lapse
    // the account is deactivated: its session ended at once
    app.get("/api/v1/me", &mal_token).await.expect_problem(401, None);
    // the group binding stays for the others
    let left = app.get(&b2, &app.admin_token).await.expect(200).body;
    assert_eq!(left["items"].as_array().unwrap().len(), 1, "{left}");

    app.replicate().await;
    assert!(held(&os, &e1, &mal).await.is_empty() && held(&os, &e2, &mal).await.is_empty());
    let id = r["id"].as_str().unwrap();
    let after = app.get(&format!("/api/v1/admin/emergency/revocations/{id}"), &app.admin_token).await.expect(200).body;
    assert_eq!(after["complete"], true, "{after}");
    for t in after["tenants"].as_array().unwrap() {
        assert!(t["revoked_at"].is_string(), "{t}");
        assert!(t["assignments"].as_array().unwrap().iter().all(|a| a["confirmed_at"].is_string()), "{t}");
    }
    app.get(&format!("/api/v1/admin/emergency/revocations/{}", uuid::Uuid::new_v4()), &app.admin_token)
        .await
        .expect_problem(404, None);
    for chain in [
        format!("/api/v1/workspaces/{ws1}/history"),
        format!("/api/v1/workspaces/{ws2}/history"),
        "/api/v1/admin/history".into(),
    ] {
        let h = app.get(&format!("{chain}?kind=emergency_revocation"), &app.admin_token).await.expect(200);
        assert_eq!(h.body["items"][0]["details"]["justification"], "stolen laptop", "{chain}");
    }
}

async fn ac8_expired_access_lists_red_and_yellow_and_each_is_extendable(app: TestApp) {
    let (ws, other) = (unique("w"), unique("w"));
    for w in [&ws, &other] {
        app.workspace(&app.admin_token, w).await;
        app.project(&app.admin_token, w, "web").await;
    }
    app.user("mia").await;
    app.invite(&app.admin_token, &ws, "mia", "workspace_manager").await;
    let mut ids = Vec::new();
    for (u, w, days) in [("ann", &ws, 2), ("bob", &ws, 30), ("cy", &ws, 10), ("dee", &other, 3)] {
        app.user(u).await;
        app.invite(&app.admin_token, w, u, "workspace_member").await;
        let body = json!({"user": u, "role": "project_user", "expires_at": at(&app, Duration::days(days))});
        let r = app.post(&format!("/api/v1/workspaces/{w}/projects/web/bindings"), &app.admin_token, body).await;
        ids.push(r.expect(201).body["id"].as_str().unwrap().to_owned());
    }
    app.post(
        &format!("/api/v1/workspaces/{ws}/projects/web/bindings"),
        &app.admin_token,
        json!({"user": "mia", "role": "project_user"}),
    )
    .await
    .expect(201);
    // three days on: ann's has expired (red), cy's expires within 7 days (yellow), bob's is far off
    app.clock.advance(Duration::days(3) + Duration::hours(1));
    let mia = app.sign_in("mia", "password-of-mia").await; // days later: a new session
    let list = format!("/api/v1/workspaces/{ws}/expired-access");
    let body = app.get(&list, &mia).await.expect(200).body;
    let rows: Vec<(String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["subject"].as_str().unwrap().to_owned(), i["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rows, [("user:ann".to_owned(), "expired".to_owned()), ("user:cy".to_owned(), "soon".to_owned())]);
    assert_eq!(body["items"][0]["project"], "web");
    let only = app.get(&format!("{list}?state=soon"), &mia).await.expect(200).body;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert_eq!(only["items"][0]["subject"], "user:cy");
    app.get(&format!("{list}?state=purple"), &mia).await.expect_problem(422, Some("state"));
    // pages of one
    let first = app.get(&format!("{list}?limit=1"), &mia).await.expect(200).body;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("{list}?limit=1&cursor={cursor}"), &mia).await.expect(200).body;
    assert_eq!(
        (first["items"][0]["subject"].as_str(), second["items"][0]["subject"].as_str()),
        (Some("user:ann"), Some("user:cy"))
    );
    assert!(second["next_cursor"].is_null());
    // AC12: the manager sees the soon-expiring one on the dashboard
    let me = app.get("/api/v1/me", &mia).await.expect(200).body;
    let notices: Vec<&str> = me["notices"].as_array().unwrap().iter().map(|n| n["subject"].as_str().unwrap()).collect();
    assert_eq!(notices, ["user:cy"]);
    let ann = app.sign_in("ann", "password-of-ann").await;
    assert_eq!(app.get("/api/v1/me", &ann).await.expect(200).body["notices"], json!([]), "members see no notices");
    // across the installation (admins): dee's in the other workspace too
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await;
    let all = app.get("/api/v1/expired-access", &admin).await.expect(200).body;
    let subjects: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["user:ann", "user:dee", "user:cy"]);
    // extended in place: it leaves the list and is in force again
    let binding = format!("/api/v1/workspaces/{ws}/projects/web/bindings/{}", ids[0]);
    let r = app.patch(&binding, &mia, json!({"expires_at": at(&app, Duration::days(60))})).await.expect(200);
    assert_eq!(r.body["in_force"], true);
    let body = app.get(&list, &mia).await.expect(200).body;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
}

/// PR3: admins define tags; projects are checked against them on create and
/// update, the tag named in each error, nothing written on refusal.
async fn pr3_project_tags_follow_the_tag_definitions(app: TestApp) {
    let defs = "/api/v1/tag-definitions";
    let define = |body: Value| app.post(defs, &app.admin_token, body);
    define(json!({"key": "cost-centre", "display_name": "Cost centre", "type": "string", "pattern": "[0-9]{4}", "required": true}))
        .await
        .expect(201);
    define(json!({"key": "env", "display_name": "Environment", "type": "single_select", "options": ["dev", "prod"], "default": "dev"}))
        .await
        .expect(201);
    define(json!({"key": "owner", "display_name": "Owner", "type": "email", "admin_only": true})).await.expect(201);
    define(json!({"key": "budget", "display_name": "Budget", "type": "number"})).await.expect(201);
    define(json!({"key": "langs", "display_name": "Languages", "type": "multi_select", "options": ["rust", "go"]}))
        .await
        .expect(201);
    define(json!({"key": "public", "display_name": "Public", "type": "boolean"})).await.expect(201);
    // bad definitions name their field
    define(json!({"key": "env", "display_name": "Again", "type": "string"})).await.expect_problem(409, Some("key"));
    define(json!({"key": "x", "display_name": "X", "type": "colour"})).await.expect_problem(422, Some("type"));
    define(json!({"key": "x", "display_name": "X", "type": "single_select"}))
        .await
        .expect_problem(422, Some("options"));
    define(json!({"key": "x", "display_name": "X", "type": "string", "pattern": "(("}))
        .await
        .expect_problem(422, Some("pattern"));
    let listed = app.get(defs, &app.admin_token).await.expect(200).body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 6);

    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.user("mia").await;
    app.invite(&app.admin_token, &ws, "mia", "workspace_manager").await;
    let mia = app.sign_in("mia", "password-of-mia").await;
    let projects = format!("/api/v1/workspaces/{ws}/projects");
    let create = |body: Value| app.post(&projects, &mia, body);
    create(json!({"identifier": "web", "display_name": "Web"})).await.expect_problem(422, Some("tags.cost-centre"));
    create(json!({"identifier": "web", "display_name": "Web", "tags": {"cost-centre": "12"}}))
        .await
        .expect_problem(422, Some("tags.cost-centre"));
    create(json!({"identifier": "web", "display_name": "Web", "tags": {"cost-centre": "1234", "budget": "lots"}}))
        .await
        .expect_problem(422, Some("tags.budget"));
    create(json!({"identifier": "web", "display_name": "Web", "tags": {"cost-centre": "1234", "colour": "red"}}))
        .await
        .expect_problem(422, Some("tags.colour"));
    create(json!({"identifier": "web", "display_name": "Web", "tags": {"cost-centre": "1234", "owner": "mia@example.org"}}))
        .await
        .expect_problem(422, Some("tags.owner"));
    assert!(app.get(&projects, &mia).await.expect(200).body["items"].as_array().unwrap().is_empty(), "nothing written");
    let p = create(json!({"identifier": "web", "display_name": "Web", "tags": {"cost-centre": "1234", "langs": ["rust"], "budget": 1200.5}}))
        .await
        .expect(201)
        .body;
    assert_eq!(p["tags"], json!({"cost-centre": "1234", "env": "dev", "langs": ["rust"], "budget": 1200.5}));
    // updates: set, remove, the admin-only one by an admin only
    let web = format!("{projects}/web");
    let r = app.patch(&web, &mia, json!({"tags": {"env": "prod", "langs": null, "public": true}})).await.expect(200);
    assert_eq!(r.body["tags"], json!({"cost-centre": "1234", "env": "prod", "budget": 1200.5, "public": true}));
    app.patch(&web, &mia, json!({"tags": {"env": "staging"}})).await.expect_problem(422, Some("tags.env"));
    app.patch(&web, &mia, json!({"tags": {"cost-centre": null}})).await.expect_problem(422, Some("tags.cost-centre"));
    app.patch(&web, &mia, json!({"tags": {"owner": "mia@example.org"}})).await.expect_problem(422, Some("tags.owner"));
    let r = app.patch(&web, &app.admin_token, json!({"tags": {"owner": "mia@example.org"}})).await.expect(200);
    assert_eq!(r.body["tags"]["owner"], "mia@example.org");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=project_updated"), &app.admin_token).await;
    assert_eq!(h.expect(200).body["items"][0]["details"]["new"]["tags"]["owner"], "mia@example.org");
    // definitions change and go; projects keep their values
    app.patch(&format!("{defs}/env"), &app.admin_token, json!({"options": ["dev", "prod", "staging"]}))
        .await
        .expect(200);
    app.patch(&web, &mia, json!({"tags": {"env": "staging"}})).await.expect(200);
    app.delete(&format!("{defs}/budget"), &app.admin_token).await.expect(204);
    app.delete(&format!("{defs}/budget"), &app.admin_token).await.expect_problem(404, None);
    let shown = app.get(&web, &mia).await.expect(200).body;
    assert_eq!(shown["tags"]["budget"], 1200.5);
}

/// PM1-PM3: payment methods of a workspace, a project's method and
/// substitute, the forecast, and the daily job that swaps an expired method
/// for its substitute.
async fn pm3_expired_payment_method_is_replaced_by_its_substitute(app: TestApp) {
    let (ws, other) = (unique("w"), unique("w"));
    app.workspace(&app.admin_token, &ws).await;
    app.workspace(&app.admin_token, &other).await;
    let methods = format!("/api/v1/workspaces/{ws}/payment-methods");
    let add = |body: Value| app.post(&methods, &app.admin_token, body);
    // today is 2026-11-23 on the test clock
    let card =
        add(json!({"name": "Card", "amount": 1000.0, "expires_on": "2026-11-30", "billing_data": {"po": "4711"}}))
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let next =
        add(json!({"name": "Next card", "amount": 2000.0, "expires_on": "2027-11-30"})).await.expect(201).body["id"]
            .as_str()
            .unwrap()
            .to_owned();
    add(json!({"name": "Bad", "amount": -1.0, "expires_on": "2027-01-01"})).await.expect_problem(422, Some("amount"));
    add(json!({"name": "Bad", "amount": 1.0, "expires_on": "next year"})).await.expect_problem(422, Some("expires_on"));
    let foreign = app
        .post(
            &format!("/api/v1/workspaces/{other}/payment-methods"),
            &app.admin_token,
            json!({"name": "Theirs", "amount": 1.0, "expires_on": "2027-01-01"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let projects = format!("/api/v1/workspaces/{ws}/projects");
    // PM2: the workspace's own methods only, and a substitute only with a method
    app.post(
        &projects,
        &app.admin_token,
        json!({"identifier": "web", "display_name": "Web", "payment_method": foreign}),
    )
    .await
    .expect_problem(422, Some("payment_method"));
    app.post(
        &projects,
        &app.admin_token,
        json!({"identifier": "web", "display_name": "Web", "substitute_payment_method": next}),
    )
    .await
    .expect_problem(422, Some("substitute_payment_method"));
    let p = app
        .post(&projects, &app.admin_token, json!({"identifier": "web", "display_name": "Web", "payment_method": card}))
        .await
        .expect(201)
        .body;
    assert_eq!(p["payment_method"], card.as_str());
    app.post(&projects, &app.admin_token, json!({"identifier": "api", "display_name": "Api", "payment_method": card}))
        .await
        .expect(201);
    // the forecast: both run out within 30 days with no substitute
    let forecast = format!("{methods}/forecast");
    let f = app.get(&forecast, &app.admin_token).await.expect(200).body;
    assert_eq!(f["items"].as_array().unwrap().len(), 2, "{f}");
    app.patch(&format!("{projects}/web"), &app.admin_token, json!({"substitute_payment_method": next}))
        .await
        .expect(200);
    let f = app.get(&forecast, &app.admin_token).await.expect(200).body;
    assert_eq!(f["items"][0]["project"], "api", "{f}");
    app.delete(&format!("{methods}/{card}"), &app.admin_token).await.expect_problem(409, Some("id"));

    // PM3: nothing before the method expires; the day after, web switches, api (no substitute) does not
    let job = || canopy_engine::payments::substitute_expired(&app.store, app.clock.as_ref());
    assert_eq!(job().await.unwrap(), 0);
    app.clock.advance(Duration::days(8));
    assert_eq!(job().await.unwrap(), 1);
    assert_eq!(job().await.unwrap(), 0, "a switched project has no substitute left");
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await;
    let web = app.get(&format!("{projects}/web"), &admin).await.expect(200).body;
    assert_eq!(
        (web["payment_method"].as_str(), &web["substitute_payment_method"]),
        (Some(next.as_str()), &Value::Null)
    );
    let api = app.get(&format!("{projects}/api"), &admin).await.expect(200).body;
    assert_eq!(api["payment_method"], card.as_str());
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=payment_method_substituted"), &admin).await;
    let e = &h.expect(200).body["items"][0];
    assert_eq!((e["initiator"]["name"].as_str(), e["details"]["project"].as_str()), (Some("payments"), Some("web")));
    assert_eq!(e["details"]["expired"]["payment_method"], card.as_str());
}

canopy_testkit::backend_tests!(
    pm3_expired_payment_method_is_replaced_by_its_substitute,
    pr3_project_tags_follow_the_tag_definitions,
    ac8_expired_access_lists_red_and_yellow_and_each_is_extendable,
    ac7_expiry_job_ends_each_expired_binding_once_and_wakes_at_the_next,
    ad3_emergency_grant_binds_until_expiry_and_reaches_tenants_first,
    ad4_emergency_revocation_removes_everything_and_reports_each_tenant,
);
