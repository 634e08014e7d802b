//! FE1–FE4 and AD2: where four-eye is on, changes to bindings wait as
//! requests until managers other than the requester (or one admin) approve;
//! and the installation settings that go with it (the longest access a
//! binding may grant, substitute payment methods).

use canopy_domain::clock::Clock;
use canopy_engine::mailer::{Mailer, deliver_due};
use canopy_testkit::TestApp;
use serde_json::{Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::tenants::unique;

fn at(app: &TestApp, from_now: Duration) -> String {
    (app.clock.now() + from_now).format(&Rfc3339).unwrap()
}

async fn four_eye(app: &TestApp, enabled: bool, approvals: u32) {
    let body = json!({"four_eye": {"enabled": enabled, "approvals": approvals}});
    let s = app.patch("/api/v1/settings", &app.admin_token, body).await.expect(200).body;
    assert_eq!(s["four_eye"], json!({"enabled": enabled, "approvals": approvals}));
}

/// A workspace owned by `owner` with a project `web`, `managers` and `members`.
async fn workspace(app: &TestApp, owner: &str, managers: &[&str], members: &[&str]) -> String {
    let ws = unique("w");
    app.workspace(owner, &ws).await;
    app.project(owner, &ws, "web").await;
    for m in managers {
        app.invite(owner, &ws, m, "workspace_manager").await;
    }
    for m in members {
        app.invite(owner, &ws, m, "workspace_member").await;
    }
    ws
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().unwrap().clone()
}

async fn events(app: &TestApp, ws: &str, kind: &str) -> Vec<Value> {
    items(&app.get(&format!("/api/v1/workspaces/{ws}/history?kind={kind}"), &app.admin_token).await.expect(200).body)
}

async fn fe1_identical_adds_at_once_open_one_request(app: TestApp) {
    // the look for a similar pending request and the request's opening are
    // one step: identical adds racing each other open one request
    let olga = app.user("olga").await;
    app.user("ann").await;
    four_eye(&app, true, 1).await;
    let ws = workspace(&app, &olga, &[], &["ann"]).await;
    let app = std::sync::Arc::new(app);
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (app, olga, bindings) = (app.clone(), olga.clone(), bindings.clone());
        tasks.push(tokio::spawn(async move {
            let add = json!({"user": "ann", "role": "project_user", "justification": "ann joins"});
            app.post(&bindings, &olga, add).await.status.as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409, 409, 409, 409, 409]);
    let pending = items(&app.get(&format!("/api/v1/workspaces/{ws}/requests"), &olga).await.expect(200).body);
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(events(&app, &ws, "role_request_created").await.len(), 1);
}

async fn fe1_binding_changes_wait_for_approval_where_four_eye_is_on(app: TestApp) {
    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    let max = app.user("max").await;
    let ann = app.user("ann").await;
    app.get("/api/v1/settings", &olga).await.expect_problem(403, None);
    app.patch("/api/v1/settings", &olga, json!({"four_eye": {"enabled": false}})).await.expect_problem(403, None);
    four_eye(&app, true, 2).await;
    let ws = workspace(&app, &olga, &["mia", "max"], &["ann"]).await;
    let shown = app.get(&format!("/api/v1/workspaces/{ws}"), &olga).await.expect(200).body;
    assert_eq!(shown["four_eye"], json!({"enabled": true, "approvals": 2, "source": "installation"}));
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let requests = format!("/api/v1/workspaces/{ws}/requests");

    // adding: a justification is required, and nothing is bound yet
    let add = json!({"user": "ann", "role": "project_user"});
    app.post(&bindings, &olga, add.clone()).await.expect_problem(422, Some("justification"));
    let add = json!({"user": "ann", "role": "project_user", "justification": "ann joins the web team"});
    let q = app.post(&bindings, &olga, add).await.expect(202).body;
    assert_eq!((q["kind"].as_str(), q["state"].as_str()), (Some("add"), Some("pending")), "{q}");
    assert_eq!((q["approvals_required"].as_u64(), q["needs_admin"].as_bool()), (Some(2), Some(false)));
    assert_eq!((q["subject"].as_str(), q["requested_by"].as_str()), (Some("user:ann"), Some("olga")));
    assert_eq!(q["justification"], "ann joins the web team");
    let id = q["id"].as_str().unwrap().to_owned();
    assert!(items(&app.get(&bindings, &olga).await.expect(200).body).is_empty(), "nothing bound before approval");
    let again = json!({"user": "ann", "role": "project_user", "justification": "asked twice"});
    app.post(&bindings, &mia, again).await.expect_problem(409, None);
    let pending = items(&app.get(&requests, &mia).await.expect(200).body);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    app.get(&requests, &ann).await.expect_problem(403, None);
    // managers see what waits for their decision on GET /me; the requester does not
    let waiting = |me: &Value| {
        me["workspaces"].as_array().unwrap().iter().find(|w| w["identifier"] == ws.as_str()).unwrap()["requests_to_decide"].clone()
    };
    assert_eq!(waiting(&app.get("/api/v1/me", &mia).await.expect(200).body), 1);
    assert_eq!(waiting(&app.get("/api/v1/me", &olga).await.expect(200).body), 0);

    // FE4: not one's own, not a member, one person counts once
    app.post(&format!("{requests}/{id}/approve"), &olga, json!({})).await.expect_problem(403, None);
    app.post(&format!("{requests}/{id}/approve"), &ann, json!({})).await.expect_problem(403, None);
    let q = app.post(&format!("{requests}/{id}/approve"), &mia, json!({})).await.expect(200).body;
    assert_eq!((q["state"].as_str(), q["approvals"].as_array().unwrap().len()), (Some("pending"), 1), "{q}");
    app.post(&format!("{requests}/{id}/approve"), &mia, json!({})).await.expect_problem(409, None);
    assert_eq!(waiting(&app.get("/api/v1/me", &mia).await.expect(200).body), 0, "mia has decided");
    assert_eq!(waiting(&app.get("/api/v1/me", &max).await.expect(200).body), 1);
    assert!(items(&app.get(&bindings, &olga).await.expect(200).body).is_empty(), "one approval of two");
    let q = app.post(&format!("{requests}/{id}/approve"), &max, json!({"reason": "ok"})).await.expect(200).body;
    assert_eq!(q["state"], "approved", "{q}");
    assert_eq!(q["decided_by"], "max");
    let bound = items(&app.get(&bindings, &olga).await.expect(200).body);
    assert_eq!(bound.len(), 1);
    assert_eq!((bound[0]["subject"].as_str(), bound[0]["role"].as_str()), (Some("user:ann"), Some("project_user")));
    assert_eq!(q["binding"], bound[0]["id"]);
    assert_eq!(bound[0]["granted_by"], "olga");
    let binding = bound[0]["id"].as_str().unwrap().to_owned();
    // a decided request takes no more decisions
    app.post(&format!("{requests}/{id}/approve"), &app.admin_token, json!({})).await.expect_problem(409, None);
    app.post(&format!("{requests}/{id}/decline"), &mia, json!({})).await.expect_problem(409, None);
    let created = events(&app, &ws, "binding_created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["initiator"]["name"], "max");
    assert_eq!(created[0]["details"]["request"], id.as_str());
    assert_eq!(events(&app, &ws, "role_request_created").await.len(), 1);
    assert_eq!(events(&app, &ws, "role_request_approval_given").await.len(), 2);

    // changing: declined, so nothing changes
    app.clock.advance(Duration::minutes(1));
    let change = json!({"expires_at": at(&app, Duration::days(10)), "justification": "ends with the project phase"});
    let q = app.patch(&format!("{bindings}/{binding}"), &mia, change).await.expect(202).body;
    assert_eq!(
        (q["kind"].as_str(), q["from_role"].as_str(), q["role"].as_str()),
        (Some("change"), Some("project_user"), Some("project_user"))
    );
    let change_id = q["id"].as_str().unwrap().to_owned();
    let nothing = json!({"role": "project_user", "justification": "no change"});
    app.patch(&format!("{bindings}/{binding}"), &mia, nothing).await.expect_problem(422, Some("role"));
    let q = app
        .post(&format!("{requests}/{change_id}/decline"), &max, json!({"reason": "keep it open"}))
        .await
        .expect(200)
        .body;
    assert_eq!((q["state"].as_str(), q["reason"].as_str()), (Some("declined"), Some("keep it open")));
    let b = &items(&app.get(&bindings, &olga).await.expect(200).body)[0];
    assert_eq!(b["expires_at"], Value::Null, "a declined change changes nothing");

    // removing: an admin approves alone (FE3)
    app.clock.advance(Duration::minutes(1));
    app.delete(&format!("{bindings}/{binding}"), &olga).await.expect_problem(422, Some("justification"));
    let q = app.delete(&format!("{bindings}/{binding}?justification=left%20the%20team"), &olga).await.expect(202).body;
    assert_eq!((q["kind"].as_str(), q["justification"].as_str()), (Some("remove"), Some("left the team")));
    let remove_id = q["id"].as_str().unwrap().to_owned();
    let q = app.post(&format!("{requests}/{remove_id}/approve"), &app.admin_token, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "approved");
    assert!(items(&app.get(&bindings, &olga).await.expect(200).body).is_empty(), "removed once approved");

    // the lists: pending by default, every state on request, and the admin area (AD2)
    assert!(items(&app.get(&requests, &mia).await.expect(200).body).is_empty());
    let all = items(&app.get(&format!("{requests}?state=all"), &mia).await.expect(200).body);
    let states: Vec<&str> = all.iter().map(|q| q["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["approved", "declined", "approved"], "newest first");
    app.get(&format!("{requests}?state=maybe"), &mia).await.expect_problem(422, Some("state"));
    let shown = app.get(&format!("{requests}/{change_id}"), &mia).await.expect(200).body;
    assert_eq!(shown["state"], "declined");
    app.get(&format!("{requests}/{}", uuid::Uuid::new_v4()), &mia).await.expect_problem(404, None);

    // a workspace's own setting wins; only admins change it
    let off = json!({"four_eye": {"enabled": false}});
    app.patch(&format!("/api/v1/workspaces/{ws}"), &olga, off.clone()).await.expect_problem(403, None);
    let w = app.patch(&format!("/api/v1/workspaces/{ws}"), &app.admin_token, off).await.expect(200).body;
    assert_eq!(w["four_eye"], json!({"enabled": false, "approvals": 2, "source": "workspace"}), "approvals kept");
    app.post(&bindings, &olga, json!({"user": "ann", "role": "project_reader"})).await.expect(201);
    let bad = json!({"four_eye": {"enabled": true, "approvals": 0}});
    app.patch(&format!("/api/v1/workspaces/{ws}"), &app.admin_token, bad)
        .await
        .expect_problem(422, Some("four_eye.approvals"));
    let inherit = json!({"four_eye": null});
    let w = app.patch(&format!("/api/v1/workspaces/{ws}"), &app.admin_token, inherit).await.expect(200).body;
    assert_eq!(w["four_eye"], json!({"enabled": true, "approvals": 2, "source": "installation"}));
    assert_eq!(events(&app, &ws, "four_eye_changed").await.len(), 2);
    let _ = ann;
}

async fn fe3_too_few_managers_means_waiting_for_an_admin(app: TestApp) {
    let sink = canopy_testkit::mail_sink();
    let olga_name = unique("olga");
    let olga = app.user(&olga_name).await;
    let ann_name = unique("ann");
    app.user(&ann_name).await;
    let root = unique("root");
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": root, "email": format!("{root}@example.org"), "first_name": "Root", "last_name": "Admin",
               "password": format!("password-of-{root}"), "installation_roles": ["admin"]}),
    )
    .await
    .expect(201);
    let root_token = app.sign_in(&root, &format!("password-of-{root}")).await;
    four_eye(&app, true, 2).await;
    // olga is the only manager: nobody else can approve her request
    let ws = workspace(&app, &olga, &[], &[&ann_name]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let body = json!({"user": ann_name, "role": "project_admin", "justification": "incident 4711"});
    let q = app.post(&bindings, &olga, body).await.expect(202).body;
    assert_eq!(q["needs_admin"], true, "{q}");
    let id = q["id"].as_str().unwrap().to_owned();
    // the admin area lists every workspace's pending requests (AD2)
    app.get("/api/v1/admin/requests", &olga).await.expect_problem(403, None);
    let listed = items(&app.get(&format!("/api/v1/admin/requests?workspace={ws}"), &root_token).await.expect(200).body);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["id"].as_str(), listed[0]["needs_admin"].as_bool()), (Some(id.as_str()), Some(true)));
    app.get("/api/v1/admin/requests?workspace=nope", &root_token).await.expect_problem(404, None);
    // it is never approved silently: time passes, it still waits
    app.clock.advance(Duration::days(3));
    let root_token = app.sign_in(&root, &format!("password-of-{root}")).await;
    let olga = app.sign_in(&olga_name, &format!("password-of-{olga_name}")).await;
    let shown = app.get(&format!("/api/v1/workspaces/{ws}/requests/{id}"), &olga).await.expect(200).body;
    assert_eq!(shown["state"], "pending");
    let q = app.post(&format!("/api/v1/workspaces/{ws}/requests/{id}/approve"), &root_token, json!({})).await;
    assert_eq!(q.expect(200).body["state"], "approved");
    let bound = items(&app.get(&bindings, &olga).await.expect(200).body);
    assert_eq!(bound.len(), 1);

    // the admins were asked, and the requester told the outcome (AC11)
    let Some(sink) = sink else { return };
    let mailer = Mailer::new(&sink.smtp_url, "Canopy <canopy@test.example>").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let asked = sink.messages_to(&format!("{root}@example.org")).await;
    let asked: Vec<&Value> = asked.iter().filter(|m| m["text"].as_str().unwrap().contains(&id)).collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(asked[0]["subject"].as_str().unwrap().starts_with("Approval needed"), "{}", asked[0]["subject"]);
    let text = asked[0]["text"].as_str().unwrap();
    assert!(text.contains("incident 4711") && text.contains("waits for an admin"), "{text}");
    let told = sink.messages_to(&format!("{olga_name}@example.org")).await;
    assert!(told.iter().any(|m| m["subject"].as_str().unwrap().starts_with("Request approved")), "{told:#?}");
    let given = sink.messages_to(&format!("{ann_name}@example.org")).await;
    assert!(given.iter().any(|m| m["subject"].as_str().unwrap().starts_with("You were given")), "{given:#?}");
}

async fn fe2_managers_are_asked_by_email_and_the_requester_hears_the_outcome(app: TestApp) {
    let Some(sink) = canopy_testkit::mail_sink() else { return };
    let (olga_name, mia_name) = (unique("olga"), unique("mia"));
    let olga = app.user(&olga_name).await;
    let mia = app.user(&mia_name).await;
    app.user("ann").await;
    four_eye(&app, true, 1).await;
    let ws = workspace(&app, &olga, &[&mia_name], &["ann"]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let q = app.post(&bindings, &olga, json!({"user": "ann", "role": "project_user", "justification": "new hire"}));
    let id = q.await.expect(202).body["id"].as_str().unwrap().to_owned();
    let decline = format!("/api/v1/workspaces/{ws}/requests/{id}/decline");
    let q = app.post(&decline, &mia, json!({"reason": "wrong project"})).await;
    assert_eq!(q.expect(200).body["state"], "declined");
    let mailer = Mailer::new(&sink.smtp_url, "Canopy <canopy@test.example>").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let asked = sink.messages_to(&format!("{mia_name}@example.org")).await;
    assert_eq!(asked.len(), 1, "{asked:#?}");
    let text = asked[0]["text"].as_str().unwrap();
    assert!(text.contains(&olga_name) && text.contains("new hire") && text.contains(&id), "{text}");
    // the requester is not asked to approve their own request, but hears the outcome
    let told = sink.messages_to(&format!("{olga_name}@example.org")).await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0]["subject"].as_str().unwrap().starts_with("Request declined"), "{}", told[0]["subject"]);
    assert!(told[0]["text"].as_str().unwrap().contains("wrong project"));
}

async fn fe4_concurrent_approvals_apply_once(app: TestApp) {
    four_eye(&app, true, 3).await;
    let olga = app.user("olga").await;
    app.user("ann").await;
    let names: Vec<String> = (0..49).map(|i| format!("m{i}")).collect();
    let tokens = futures::future::join_all(names.iter().map(|n| app.user(n))).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let ws = workspace(&app, &olga, &refs, &["ann"]).await;
    let body = json!({"user": "ann", "role": "project_user", "justification": "on call"});
    let q = app.post(&format!("/api/v1/workspaces/{ws}/projects/web/bindings"), &olga, body).await.expect(202).body;
    let approve = format!("/api/v1/workspaces/{ws}/requests/{}/approve", q["id"].as_str().unwrap());
    // 49 managers and an admin, all at once
    let everyone: Vec<&str> = tokens.iter().map(String::as_str).chain([app.admin_token.as_str()]).collect();
    let answers = futures::future::join_all(everyone.iter().map(|t| app.post(&approve, t, json!({})))).await;
    let mut approved = 0;
    let mut counted = 0;
    for a in &answers {
        match a.status.as_u16() {
            200 if a.body["state"] == "approved" => approved += 1,
            200 if a.body["state"] == "pending" => counted += 1,
            409 => assert_eq!(a.content_type, "application/problem+json"),
            other => panic!("unexpected answer {other}: {}", a.body),
        }
    }
    assert_eq!(approved, 1, "applied exactly once");
    assert!(counted <= 2, "at most two approvals wait before the third applies: {counted}");
    let bound =
        items(&app.get(&format!("/api/v1/workspaces/{ws}/projects/web/bindings"), &olga).await.expect(200).body);
    assert_eq!(bound.len(), 1);
    assert_eq!(events(&app, &ws, "binding_created").await.len(), 1);
    assert_eq!(events(&app, &ws, "role_request_approved").await.len(), 1);
    assert_eq!(events(&app, &ws, "role_request_approval_given").await.len(), counted + 1);
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200).body;
    assert_eq!(v["ok"], true, "{v}");
}

async fn fe1_requests_the_world_moved_past_are_void_not_applied(app: TestApp) {
    four_eye(&app, true, 1).await;
    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    app.user("ann").await;
    let ws = workspace(&app, &olga, &["mia"], &["ann"]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let requests = format!("/api/v1/workspaces/{ws}/requests");
    // an add whose expiration passes while it waits
    let body = json!({"user": "ann", "role": "project_user", "justification": "a short job",
                      "expires_at": at(&app, Duration::hours(1))});
    let add = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::hours(2));
    let q = app.post(&format!("{requests}/{add}/approve"), &mia, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "void", "{q}");
    assert!(q["reason"].as_str().unwrap().contains("expiration passed"), "{q}");
    assert!(items(&app.get(&bindings, &olga).await.expect(200).body).is_empty(), "no access that is already over");
    assert_eq!(events(&app, &ws, "role_request_void").await.len(), 1);

    // a change to a binding that went with its member
    let body = json!({"user": "ann", "role": "project_user", "justification": "again"});
    let add = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    let binding = app.post(&format!("{requests}/{add}/approve"), &mia, json!({})).await.expect(200).body["binding"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = json!({"role": "project_admin", "justification": "promotion"});
    let change = app.patch(&format!("{bindings}/{binding}"), &olga, change).await.expect(202).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/api/v1/workspaces/{ws}/members/user:ann"), &olga).await.expect(204);
    let q = app.post(&format!("{requests}/{change}/approve"), &mia, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "void", "{q}");
    assert!(q["reason"].as_str().unwrap().contains("removed"), "{q}");
    assert!(items(&app.get(&bindings, &olga).await.expect(200).body).is_empty(), "a removed binding stays removed");
    // a request does not outlive its requester's account
    let max = app.user("max").await;
    app.invite(&olga, &ws, "max", "workspace_manager").await;
    app.invite(&olga, &ws, "ann", "workspace_member").await;
    let body = json!({"user": "ann", "role": "project_admin", "justification": "before I go"});
    let id = app.post(&bindings, &max, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    app.patch("/api/v1/users/max", &app.admin_token, json!({"active": false})).await.expect(200);
    let q = app.post(&format!("{requests}/{id}/approve"), &mia, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "void", "{q}");
    assert!(q["reason"].as_str().unwrap().contains("requester"), "{q}");
    // the requester withdraws a request of their own
    let body = json!({"user": "ann", "role": "project_reader", "justification": "maybe"});
    let id = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    let q = app.post(&format!("{requests}/{id}/decline"), &olga, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "declined");
    assert_eq!(events(&app, &ws, "role_request_declined").await[0]["details"]["withdrawn"], true);
}

async fn fe4_approvals_count_only_people_who_may_give_them(app: TestApp) {
    four_eye(&app, true, 2).await;
    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    let max = app.user("max").await;
    let kim = app.user("kim").await;
    app.user("ann").await;
    let ws = workspace(&app, &olga, &["mia", "max", "kim"], &["ann"]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let requests = format!("/api/v1/workspaces/{ws}/requests");
    // an API key asks on behalf of the person who made it: that person cannot approve
    let key = json!({"name": "automation", "workspace": ws, "role": "workspace_manager"});
    let secret = app.post("/api/v1/api-keys", &mia, key).await.expect(201).body["secret"].as_str().unwrap().to_owned();
    let body = json!({"user": "ann", "role": "project_user", "justification": "pipeline onboarding"});
    let q = app.post(&bindings, &secret, body).await.expect(202).body;
    assert_eq!(q["requested_by"], "automation");
    let id = q["id"].as_str().unwrap().to_owned();
    app.post(&format!("{requests}/{id}/approve"), &mia, json!({})).await.expect_problem(403, None);
    app.post(&format!("{requests}/{id}/approve"), &secret, json!({})).await.expect_problem(403, None);
    // nobody approves a change to their own access
    let body = json!({"user": "kim", "role": "project_admin", "justification": "kim takes over"});
    let own = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    let r = app.post(&format!("{requests}/{own}/approve"), &kim, json!({})).await.expect_problem(403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("own access"), "{}", r.body);
    // an approval counts while its giver may still give it
    app.post(&format!("{requests}/{id}/approve"), &max, json!({})).await.expect(200);
    app.patch(&format!("/api/v1/workspaces/{ws}/members/user:max"), &olga, json!({"role": "workspace_member"}))
        .await
        .expect(200);
    let q = app.post(&format!("{requests}/{id}/approve"), &kim, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "pending", "max's approval no longer counts: {q}");
    let q = app.post(&format!("{requests}/{id}/approve"), &olga, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "approved", "{q}");
}

async fn fe1_a_change_applies_only_to_the_binding_its_approvers_saw(app: TestApp) {
    let sink = canopy_testkit::mail_sink();
    four_eye(&app, true, 1).await;
    let (olga_name, mia_name) = (unique("olga"), unique("mia"));
    let olga = app.user(&olga_name).await;
    let mia = app.user(&mia_name).await;
    app.user("ann").await;
    let ws = workspace(&app, &olga, &[&mia_name], &["ann"]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let requests = format!("/api/v1/workspaces/{ws}/requests");
    let body =
        json!({"user": "ann", "role": "project_user", "justification": "x", "expires_at": at(&app, Duration::days(5))});
    let id = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    let binding = app.post(&format!("{requests}/{id}/approve"), &mia, json!({})).await.expect(200).body["binding"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = json!({"role": "project_admin", "justification": "promotion"});
    let change = app.patch(&format!("{bindings}/{binding}"), &olga, change).await.expect(202).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // meanwhile a manager extends the access in an emergency, bypassing four-eye
    let grant = json!({"user": "ann", "workspace": ws, "project": "web", "role": "project_user",
                       "expires_at": at(&app, Duration::days(20)), "justification": "incident 99"});
    app.post("/api/v1/admin/emergency/grant", &mia, grant).await.expect(201);
    let q = app.post(&format!("{requests}/{change}/approve"), &mia, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "void", "{q}");
    assert!(q["reason"].as_str().unwrap().contains("changed meanwhile"), "{q}");
    let b = &items(&app.get(&bindings, &olga).await.expect(200).body)[0];
    assert_eq!(b["role"], "project_user", "the stale change did not apply");
    // the bypass is reviewed after the fact: the other managers are told
    let Some(sink) = sink else { return };
    let mailer = Mailer::new(&sink.smtp_url, "Canopy <canopy@test.example>").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let told = sink.messages_to(&format!("{olga_name}@example.org")).await;
    let told: Vec<&Value> =
        told.iter().filter(|m| m["subject"].as_str().unwrap().starts_with("Emergency access granted")).collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0]["text"].as_str().unwrap().contains("incident 99"));
    let mine = sink.messages_to(&format!("{mia_name}@example.org")).await;
    assert!(
        !mine.iter().any(|m| m["subject"].as_str().unwrap().starts_with("Emergency access granted")),
        "not to the grantor"
    );
}

async fn fe2_requests_lapse_after_thirty_days_without_a_decision(app: TestApp) {
    let sink = canopy_testkit::mail_sink();
    four_eye(&app, true, 1).await;
    let olga_name = unique("olga");
    let olga = app.user(&olga_name).await;
    app.user("mia").await;
    app.user("ann").await;
    let ws = workspace(&app, &olga, &["mia"], &["ann"]).await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    let body = json!({"user": "ann", "role": "project_user", "justification": "for the spring release"});
    let id = app.post(&bindings, &olga, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::days(29));
    assert_eq!(canopy_engine::expiry::void_lapsed(&app.store, app.clock.as_ref()).await.unwrap(), 0, "not yet");
    app.clock.advance(Duration::days(1));
    // too old to approve, even before the job has voided it
    let mia = app.sign_in("mia", "password-of-mia").await;
    let r = app.post(&format!("/api/v1/workspaces/{ws}/requests/{id}/approve"), &mia, json!({})).await;
    assert!(r.expect_problem(409, None).body["detail"].as_str().unwrap().contains("lapsed"));
    assert_eq!(canopy_engine::expiry::void_lapsed(&app.store, app.clock.as_ref()).await.unwrap(), 1);
    assert_eq!(canopy_engine::expiry::void_lapsed(&app.store, app.clock.as_ref()).await.unwrap(), 0, "once");
    let q = app.get(&format!("/api/v1/workspaces/{ws}/requests/{id}"), &mia).await.expect(200).body;
    assert_eq!((q["state"].as_str(), q["decided_by"].as_str()), (Some("void"), Some("expiry")));
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=role_request_void"), &mia).await.expect(200).body;
    let e = &items(&h)[0];
    assert_eq!(
        (e["initiator"]["kind"].as_str(), e["details"]["request"].as_str()),
        (Some("system"), Some(id.as_str()))
    );
    assert!(items(&app.get(&bindings, &mia).await.expect(200).body).is_empty());
    let Some(sink) = sink else { return };
    let mailer = Mailer::new(&sink.smtp_url, "Canopy <canopy@test.example>").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let told = sink.messages_to(&format!("{olga_name}@example.org")).await;
    let told: Vec<&Value> =
        told.iter().filter(|m| m["subject"].as_str().unwrap().starts_with("Request void")).collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0]["text"].as_str().unwrap().contains("30 days"), "{}", told[0]["text"]);
}

async fn ad2_admin_area_shows_each_workspaces_pending_requests_and_history(app: TestApp) {
    four_eye(&app, true, 1).await;
    let olga = app.user("olga").await;
    app.user("ann").await;
    let (a, b) = (workspace(&app, &olga, &[], &["ann"]).await, workspace(&app, &olga, &[], &["ann"]).await);
    for ws in [&a, &b] {
        let body = json!({"user": "ann", "role": "project_user", "justification": format!("work in {ws}")});
        app.post(&format!("/api/v1/workspaces/{ws}/projects/web/bindings"), &olga, body).await.expect(202);
    }
    // every workspace's pending requests, and one workspace's on its own
    let all = items(&app.get("/api/v1/admin/requests", &app.admin_token).await.expect(200).body);
    let mut seen: Vec<&str> = all.iter().map(|q| q["workspace"].as_str().unwrap()).collect();
    seen.sort();
    let mut want = [a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(seen, want);
    let only =
        items(&app.get(&format!("/api/v1/admin/requests?workspace={a}"), &app.admin_token).await.expect(200).body);
    assert_eq!((only.len(), only[0]["workspace"].as_str()), (1, Some(a.as_str())));
    app.get("/api/v1/admin/requests?state=sometimes", &app.admin_token).await.expect_problem(422, Some("state"));
    // and its history, though the admin is no member
    assert_eq!(events(&app, &a, "role_request_created").await.len(), 1);
}

async fn ac7_bindings_grant_access_for_at_most_the_installation_maximum(app: TestApp) {
    let admin = app.admin_token.clone();
    for (body, field) in [
        (json!({"max_binding_days": 0}), "max_binding_days"),
        (json!({"max_binding_days": 40000}), "max_binding_days"),
        (json!({"four_eye": {"enabled": true, "approvals": 11}}), "four_eye.approvals"),
        (json!({"payment_substitutes": "yes"}), "payment_substitutes"),
        (json!({"colour": "green"}), "colour"),
    ] {
        app.patch("/api/v1/settings", &admin, body).await.expect_problem(422, Some(field));
    }
    let s = app.patch("/api/v1/settings", &admin, json!({"max_binding_days": 30})).await.expect(200).body;
    assert_eq!(
        s,
        json!({"four_eye": {"enabled": false, "approvals": 1}, "max_binding_days": 30, "payment_substitutes": true})
    );
    assert_eq!(app.get("/api/v1/settings", &admin).await.expect(200).body, s);
    let h = items(&app.get("/api/v1/admin/history?kind=settings_changed", &admin).await.expect(200).body);
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0]["details"]["old"]["max_binding_days"].clone(), h[0]["details"]["new"]["max_binding_days"].clone()),
        (Value::Null, json!(30))
    );

    let ws = unique("w");
    app.workspace(&admin, &ws).await;
    app.project(&admin, &ws, "web").await;
    app.user("ann").await;
    app.invite(&admin, &ws, "ann", "workspace_member").await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    app.post(&bindings, &admin, json!({"user": "ann", "role": "project_user"}))
        .await
        .expect_problem(422, Some("expires_at"));
    let too_long = json!({"user": "ann", "role": "project_user", "expires_at": at(&app, Duration::days(31))});
    app.post(&bindings, &admin, too_long).await.expect_problem(422, Some("expires_at"));
    let ok = json!({"user": "ann", "role": "project_user", "expires_at": at(&app, Duration::days(30))});
    let id = app.post(&bindings, &admin, ok).await.expect(201).body["id"].as_str().unwrap().to_owned();
    app.patch(&format!("{bindings}/{id}"), &admin, json!({"expires_at": null}))
        .await
        .expect_problem(422, Some("expires_at"));
    app.patch(&format!("{bindings}/{id}"), &admin, json!({"role": "project_admin"})).await.expect(200);
    // another role is a new grant: an old binding without an end gets one first
    app.patch("/api/v1/settings", &admin, json!({"max_binding_days": null})).await.expect(200);
    let forever = app.post(&bindings, &admin, json!({"user": "ann", "role": "project_reader"})).await.expect(201);
    let forever = forever.body["id"].as_str().unwrap().to_owned();
    app.patch("/api/v1/settings", &admin, json!({"max_binding_days": 30})).await.expect(200);
    let promote = json!({"role": "project_user"});
    app.delete(&format!("{bindings}/{id}"), &admin).await.expect(204);
    app.patch(&format!("{bindings}/{forever}"), &admin, promote).await.expect_problem(422, Some("expires_at"));
    let grant = json!({"user": "ann", "workspace": ws, "project": "web", "role": "project_admin",
                       "expires_at": at(&app, Duration::days(60)), "justification": "incident"});
    app.post("/api/v1/admin/emergency/grant", &admin, grant).await.expect_problem(422, Some("expires_at"));
    // no maximum again: bindings without an end are allowed
    app.patch("/api/v1/settings", &admin, json!({"max_binding_days": null})).await.expect(200);
    app.post(&bindings, &admin, json!({"user": "ann", "role": "project_admin"})).await.expect(201);
}

async fn pm2_substitutes_follow_the_installation_setting(app: TestApp) {
    let admin = app.admin_token.clone();
    let ws = unique("w");
    app.workspace(&admin, &ws).await;
    let methods = format!("/api/v1/workspaces/{ws}/payment-methods");
    let today = app.clock.now().date();
    let mut ids = Vec::new();
    for (name, expires_on) in [("card", today - Duration::days(1)), ("spare", today + Duration::days(300))] {
        let body = json!({"name": name, "amount": 1000.0, "expires_on": expires_on.to_string()});
        ids.push(app.post(&methods, &admin, body).await.expect(201).body["id"].as_str().unwrap().to_owned());
    }
    let projects = format!("/api/v1/workspaces/{ws}/projects");
    let body = json!({"identifier": "web", "display_name": "Web", "payment_method": ids[0], "substitute_payment_method": ids[1]});
    app.post(&projects, &admin, body).await.expect(201);
    app.patch("/api/v1/settings", &admin, json!({"payment_substitutes": false})).await.expect(200);
    let body = json!({"identifier": "api", "display_name": "Api", "payment_method": ids[0], "substitute_payment_method": ids[1]});
    app.post(&projects, &admin, body).await.expect_problem(422, Some("substitute_payment_method"));
    // switched off, the daily job swaps nothing
    assert_eq!(canopy_engine::payments::substitute_expired(&app.store, app.clock.as_ref()).await.unwrap(), 0);
    let web = app.get(&format!("{projects}/web"), &admin).await.expect(200).body;
    assert_eq!(web["payment_method"], ids[0].as_str());
    app.patch("/api/v1/settings", &admin, json!({"payment_substitutes": true})).await.expect(200);
    assert_eq!(canopy_engine::payments::substitute_expired(&app.store, app.clock.as_ref()).await.unwrap(), 1);
}

canopy_testkit::backend_tests!(
    fe1_binding_changes_wait_for_approval_where_four_eye_is_on,
    fe1_identical_adds_at_once_open_one_request,
    fe3_too_few_managers_means_waiting_for_an_admin,
    fe2_managers_are_asked_by_email_and_the_requester_hears_the_outcome,
    fe4_concurrent_approvals_apply_once,
    ad2_admin_area_shows_each_workspaces_pending_requests_and_history,
    fe2_requests_lapse_after_thirty_days_without_a_decision,
    fe4_approvals_count_only_people_who_may_give_them,
    fe1_a_change_applies_only_to_the_binding_its_approvers_saw,
    fe1_requests_the_world_moved_past_are_void_not_applied,
    ac7_bindings_grant_access_for_at_most_the_installation_maximum,
    pm2_substitutes_follow_the_installation_setting,
);
