//! HI: the workspace history, its filters, and the tamper-evident chain.

use canopy_testkit::TestApp;
use serde_json::{Value, json};
use time::Duration;

fn kinds(r: &Value) -> Vec<String> {
    r["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

async fn hi1_every_change_is_an_event_with_initiator_time_and_details(app: TestApp) {
    let ann = app.user("ann").await;
    app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.clock.advance(Duration::minutes(1));
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "new@example.org", "role": "workspace_member"}))
        .await
        .expect(201);
    app.patch("/api/v1/workspaces/ws/members/user:bob", &ann, json!({"role": "workspace_manager"})).await.expect(200);
    app.project(&ann, "ws", "web").await;
    let b = app
        .post("/api/v1/workspaces/ws/projects/web/bindings", &ann, json!({"user": "bob", "role": "project_user"}))
        .await
        .expect(201);
    let id = b.body["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/workspaces/ws/projects/web/bindings/{id}"),
        &ann,
        json!({"role": "project_admin", "expires_at": "2026-12-01T00:00:00Z"}),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/v1/workspaces/ws/projects/web/bindings/{id}"), &ann).await.expect(204);
    // an API key's changes are attributed to the key
    let key = app
        .post("/api/v1/api-keys", &ann, json!({"name": "terraform", "workspace": "ws", "role": "workspace_manager"}))
        .await
        .expect(201);
    let key = key.body["secret"].as_str().unwrap().to_owned();
    app.patch("/api/v1/workspaces/ws", &key, json!({"display_name": "Renamed by automation"})).await.expect(200);
    app.delete("/api/v1/workspaces/ws/members/user:bob", &ann).await.expect(204);

    let r = app.get("/api/v1/workspaces/ws/history", &ann).await.expect(200);
    assert_eq!(
        kinds(&r.body),
        [
            "member_removed",
            "workspace_renamed",
            "api_key_created",
            "binding_removed",
            "binding_changed",
            "binding_created",
            "project_created",
            "member_role_changed",
            "invitation_sent",
            "member_added",
            "member_added",
            "workspace_created",
        ]
    );
    let items = r.body["items"].as_array().unwrap();
    let renamed = &items[1];
    assert_eq!(renamed["initiator"], json!({"kind": "api_key", "name": "terraform"}));
    assert_eq!(renamed["details"]["old"]["display_name"], "Workspace ws");
    assert_eq!(renamed["details"]["new"]["display_name"], "Renamed by automation");
    let changed = &items[4];
    assert_eq!(changed["initiator"], json!({"kind": "user", "name": "ann"}));
    assert_eq!(changed["details"]["old"], json!({"role": "project_user", "expires_at": null}));
    assert_eq!(changed["details"]["new"], json!({"role": "project_admin", "expires_at": "2026-12-01T00:00:00Z"}));
    let invited = &items[8];
    assert_eq!(invited["details"]["email"], "new@example.org");
    assert_eq!(invited["at"], "2026-11-23T10:01:00Z", "time comes from the injected clock");
    assert_eq!(
        items[7]["details"],
        json!({"subject": "user:bob", "old_role": "workspace_member", "new_role": "workspace_manager"})
    );
    // sequence numbers count up without gaps
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=12).rev().collect::<Vec<_>>());
}

async fn hi2_history_pages_and_filters_by_time_initiator_and_kind(app: TestApp) {
    let ann = app.user("ann").await;
    let mia = app.user("mia").await;
    app.workspace(&ann, "ws").await; // 2 events at 10:00
    app.invite(&ann, "ws", "mia", "workspace_manager").await; // 10:00
    app.clock.advance(Duration::hours(1));
    for p in ["a", "b", "c"] {
        app.project(&mia, "ws", p).await; // 11:00
    }
    app.clock.advance(Duration::hours(1));
    app.patch("/api/v1/workspaces/ws", &ann, json!({"display_name": "Later"})).await.expect(200); // 12:00

    let base = "/api/v1/workspaces/ws/history";
    let r = app.get(&format!("{base}?initiator=mia"), &ann).await.expect(200);
    assert_eq!(kinds(&r.body), ["project_created"; 3]);
    let r = app.get(&format!("{base}?kind=member_added"), &ann).await.expect(200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = app.get(&format!("{base}?since=2026-11-23T11:00:00Z&until=2026-11-23T12:00:00Z"), &ann).await.expect(200);
    assert_eq!(kinds(&r.body), ["project_created"; 3]);
    let r = app.get(&format!("{base}?since=2026-11-23T11:30:00Z"), &ann).await.expect(200);
    assert_eq!(kinds(&r.body), ["workspace_renamed"]);
    let r = app.get(&format!("{base}?initiator=mia&kind=workspace_renamed"), &ann).await.expect(200);
    assert!(kinds(&r.body).is_empty());

    // paging through all seven events, three at a time
    let mut seen = Vec::new();
    let mut url = format!("{base}?limit=3");
    loop {
        let r = app.get(&url, &ann).await.expect(200);
        seen.extend(r.body["items"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("{base}?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);

    // one event's details
    let r = app.get(&format!("{base}?kind=workspace_renamed"), &ann).await.expect(200);
    let id = r.body["items"][0]["id"].as_str().unwrap();
    let e = app.get(&format!("{base}/{id}"), &ann).await.expect(200);
    assert_eq!(e.body["details"]["new"]["display_name"], "Later");
    app.get(&format!("{base}/00000000-0000-0000-0000-000000000000"), &ann).await.expect_problem(404, None);

    // bad filters name the parameter
    app.get(&format!("{base}?kind=nonsense"), &ann).await.expect_problem(422, Some("kind"));
    app.get(&format!("{base}?since=yesterday"), &ann).await.expect_problem(422, Some("since"));
    app.get(&format!("{base}?limit=0"), &ann).await.expect_problem(422, Some("limit"));
    app.get(&format!("{base}?limit=abc"), &ann).await.expect_problem(422, Some("limit"));
    app.get(&format!("{base}?cursor=%21%21"), &ann).await.expect_problem(422, Some("cursor"));
    app.get(&format!("{base}?since=2026-11-23T12:00:00Z&until=2026-11-23T11:00:00Z"), &ann)
        .await
        .expect_problem(422, Some("until"));
}

async fn hi1_installation_changes_are_in_the_installation_history(app: TestApp) {
    let admin = app.admin_token.clone();
    app.user("ann").await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Devs"})).await.expect(201);
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "ann"})).await.expect(201);
    app.post("/api/v1/project-roles", &admin, json!({"identifier": "auditor", "display_name": "Auditor"}))
        .await
        .expect(201);
    app.patch("/api/v1/users/ann", &admin, json!({"active": false})).await.expect(200);
    let r = app.get("/api/v1/admin/history?limit=5", &admin).await.expect(200);
    assert_eq!(
        kinds(&r.body),
        ["user_deactivated", "project_role_created", "group_member_added", "group_created", "user_created"]
    );
    let deactivated = &r.body["items"][0];
    assert_eq!(deactivated["details"]["old"]["active"], true);
    assert_eq!(deactivated["details"]["new"]["active"], false);
    assert_eq!(deactivated["initiator"], json!({"kind": "user", "name": "admin"}));
    // the bootstrap is recorded as the system's work
    let r = app.get("/api/v1/admin/history?initiator=bootstrap", &admin).await.expect(200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 4, "the admin and the three default roles");
    assert_eq!(r.body["items"][0]["initiator"]["kind"], "system");
    let ann = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await;
    app.get("/api/v1/admin/history?kind=nope", &ann).await.expect_problem(422, Some("kind"));
}

async fn hi3_concurrent_changes_keep_the_chain_intact(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (app, ann) = (app.clone(), ann.clone());
        tasks.push(tokio::spawn(async move {
            let r = app
                .post(
                    "/api/v1/workspaces/ws/projects",
                    &ann,
                    json!({"identifier": format!("p{i}"), "display_name": "P"}),
                )
                .await;
            r.status.as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let r = app.get("/api/v1/workspaces/ws/history?limit=500", &ann).await.expect(200);
    let seqs: Vec<i64> = r.body["items"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=26).rev().collect::<Vec<_>>(), "one event per change, no gaps, no duplicates");
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200);
    assert_eq!(v.body["ok"], true, "{:#}", v.body);
}

/// A workspace `ws` with six events.
async fn busy_workspace(app: &TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for p in ["a", "b", "c", "d"] {
        app.project(&ann, "ws", p).await;
    }
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200);
    assert_eq!(v.body["ok"], true, "{:#}", v.body);
    assert_eq!(v.body["first_broken"], Value::Null);
}

const WS_CHAIN: &str = "(SELECT id FROM workspaces WHERE identifier = 'ws')";

async fn broken_link(app: &TestApp) -> Value {
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200);
    assert_eq!(v.body["ok"], false, "{:#}", v.body);
    v.body["first_broken"].clone()
}

async fn hi3_edited_event_is_detected(app: TestApp) {
    busy_workspace(&app).await;
    app.sql(&format!(
        "UPDATE history_events SET details = '{{\"project\":\"evil\"}}' WHERE chain = {WS_CHAIN} AND seq = 4"
    ))
    .await;
    let b = broken_link(&app).await;
    assert_eq!(b["chain"], "ws");
    assert_eq!(b["seq"], 4);
    assert!(b["reason"].as_str().unwrap().contains("changed"));
}

async fn hi3_deleted_event_is_detected(app: TestApp) {
    busy_workspace(&app).await;
    app.sql(&format!("DELETE FROM history_events WHERE chain = {WS_CHAIN} AND seq = 3")).await;
    let b = broken_link(&app).await;
    assert_eq!((b["chain"].as_str(), b["seq"].as_i64()), (Some("ws"), Some(3)));
}

async fn hi3_reordered_events_are_detected(app: TestApp) {
    busy_workspace(&app).await;
    // swap the positions of events #3 and #4
    app.sql(&format!("UPDATE history_events SET seq = -1 WHERE chain = {WS_CHAIN} AND seq = 3")).await;
    app.sql(&format!("UPDATE history_events SET seq = 3 WHERE chain = {WS_CHAIN} AND seq = 4")).await;
    app.sql(&format!("UPDATE history_events SET seq = 4 WHERE chain = {WS_CHAIN} AND seq = -1")).await;
    let b = broken_link(&app).await;
    assert_eq!((b["chain"].as_str(), b["seq"].as_i64()), (Some("ws"), Some(3)));
}

async fn hi3_events_cut_from_the_end_are_detected(app: TestApp) {
    busy_workspace(&app).await;
    app.sql(&format!("DELETE FROM history_events WHERE chain = {WS_CHAIN} AND seq >= 5")).await;
    let b = broken_link(&app).await;
    assert_eq!(b["chain"], "ws");
    assert!(b["reason"].as_str().unwrap().contains("removed from its end"));
}

async fn hi3_a_forged_but_rehashed_event_breaks_the_next_link(app: TestApp) {
    busy_workspace(&app).await;
    // an attacker who rewrites an event's hash too still breaks the link of the event after it
    app.sql(&format!("UPDATE history_events SET hash = '{}' WHERE chain = {WS_CHAIN} AND seq = 2", "f".repeat(64)))
        .await;
    let b = broken_link(&app).await;
    assert_eq!(b["seq"], 2);
    // verification is for admins only
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.get("/api/v1/admin/history/verify", &ann).await.expect_problem(403, None);
}

/// HI1: a change and its history event commit together, or not at all: a
/// transaction that changed recorded state but recorded no event is refused
/// at commit and leaves nothing behind; with its event it commits, and
/// operational state (a session) needs none.
async fn hi1_a_change_without_its_event_cannot_commit(app: TestApp) {
    use canopy_domain::events::{ProjectRoleCreated, WorkspaceCreated};
    use canopy_domain::history::Initiator;
    use canopy_store::StoreError;

    let now = canopy_testkit::START;
    let heads = app.store.chain_heads().await.unwrap();
    // a workspace (and its chain) and a project role, without their events
    let mut tx = app.store.write().await.unwrap();
    tx.insert_workspace("ghost", "Ghost", now).await.unwrap();
    tx.insert_project_role("ghost_role", "Ghost role", "", now).await.unwrap();
    match tx.commit().await {
        Err(StoreError::Unrecorded(what)) => {
            assert_eq!(what, "insert_workspace, insert_project_role", "names the changes");
        }
        other => panic!("an unrecorded change committed: {other:?}"),
    }
    // nothing of it is left: no workspace, no chain, no role, the history unchanged
    app.get("/api/v1/workspaces/ghost", &app.admin_token).await.expect_problem(404, None);
    let roles = app.get("/api/v1/project-roles", &app.admin_token).await.expect(200).body;
    assert!(!roles.to_string().contains("ghost_role"), "{roles}");
    assert_eq!(app.store.chain_heads().await.unwrap(), heads);
    assert_eq!(app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200).body["ok"], true);
    // the store still takes writes: the same change with its events commits
    let system = Initiator::system("test");
    let mut tx = app.store.write().await.unwrap();
    let ws = tx.insert_workspace("ghost", "Ghost", now).await.unwrap();
    tx.record(
        Some(ws.id),
        now,
        &system,
        WorkspaceCreated { workspace: "ghost".into(), display_name: "Ghost".into() }.into(),
    )
    .unwrap();
    tx.insert_project_role("ghost_role", "Ghost role", "", now).await.unwrap();
    let role = ProjectRoleCreated { role: "ghost_role".into(), display_name: "Ghost role".into() };
    tx.record(None, now, &system, role.into()).unwrap();
    tx.commit().await.unwrap();
    let h = app.get("/api/v1/admin/history?kind=project_role_created", &app.admin_token).await.expect(200).body;
    assert_eq!(h["items"][0]["details"], json!({"role": "ghost_role", "display_name": "Ghost role"}));
    // operational state is not recorded: a session needs no event
    let admin = app.store.read().await.unwrap().user_by_username("admin").await.unwrap().unwrap();
    let mut tx = app.store.write().await.unwrap();
    tx.insert_session("not-a-real-hash", admin.id, now, now + Duration::hours(1), None).await.unwrap();
    tx.commit().await.unwrap();
}

canopy_testkit::backend_tests! {
    hi1_every_change_is_an_event_with_initiator_time_and_details,
    hi2_history_pages_and_filters_by_time_initiator_and_kind,
    hi1_installation_changes_are_in_the_installation_history,
    hi3_concurrent_changes_keep_the_chain_intact,
    hi3_edited_event_is_detected,
    hi3_deleted_event_is_detected,
    hi3_reordered_events_are_detected,
    hi3_events_cut_from_the_end_are_detected,
    hi3_a_forged_but_rehashed_event_breaks_the_next_link,
    hi1_a_change_without_its_event_cannot_commit,
}
