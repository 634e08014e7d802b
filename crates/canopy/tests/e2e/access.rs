//! PR and AC: projects and project access, through the REST API.

use canopy_testkit::TestApp;
use serde_json::{Value, json};
use time::Duration;

/// A workspace `ws` owned by ann with project `web`, bob and cid as members.
async fn setup(app: &TestApp) -> String {
    let ann = app.user("ann").await;
    app.user("bob").await;
    app.user("cid").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.invite(&ann, "ws", "cid", "workspace_member").await;
    app.project(&ann, "ws", "web").await;
    ann
}

async fn effective(app: &TestApp, token: &str, project: &str) -> Vec<(String, Vec<String>)> {
    let r = app.get(&format!("/api/v1/workspaces/ws/projects/{project}"), token).await.expect(200);
    r.body["effective_access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let roles = e["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
            (e["username"].as_str().unwrap().to_owned(), roles)
        })
        .collect()
}

fn roles_of(eff: &[(String, Vec<String>)], user: &str) -> Vec<String> {
    eff.iter().find(|(u, _)| u == user).map(|(_, r)| r.clone()).unwrap_or_default()
}

const BINDINGS: &str = "/api/v1/workspaces/ws/projects/web/bindings";

async fn pr1_create_project_with_identifier_rules(app: TestApp) {
    let ann = setup(&app).await;
    let r = app
        .post("/api/v1/workspaces/ws/projects", &ann, json!({"identifier": "api", "display_name": "API"}))
        .await
        .expect(201);
    assert_eq!(r.body["workspace"], "ws");
    assert!(r.body["payment_method"].is_null());
    assert_eq!(r.body["tags"], json!({}));
    for bad in ["API", "a_b", ""] {
        app.post("/api/v1/workspaces/ws/projects", &ann, json!({"identifier": bad, "display_name": "X"}))
            .await
            .expect_problem(422, Some("identifier"));
    }
    app.post("/api/v1/workspaces/ws/projects", &ann, json!({"identifier": "api", "display_name": "Again"}))
        .await
        .expect_problem(409, Some("identifier"));
    // unique per workspace only
    app.workspace(&ann, "other").await;
    app.post("/api/v1/workspaces/other/projects", &ann, json!({"identifier": "api", "display_name": "API"}))
        .await
        .expect(201);
    app.post("/api/v1/workspaces/nope/projects", &ann, json!({"identifier": "x", "display_name": "X"}))
        .await
        .expect_problem(404, None);
}

async fn pr2_project_page_lists_projects_and_current_access(app: TestApp) {
    let ann = setup(&app).await;
    app.project(&ann, "ws", "api").await;
    let r = app.get("/api/v1/workspaces/ws/projects", &ann).await.expect(200);
    let ids: Vec<_> = r.body["items"].as_array().unwrap().iter().map(|p| p["identifier"].clone()).collect();
    assert_eq!(ids, [json!("api"), json!("web")]);
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    let r = app.get("/api/v1/workspaces/ws/projects/web", &ann).await.expect(200);
    assert_eq!(r.body["identifier"], "web");
    assert_eq!(r.body["bindings"][0]["subject"], "user:bob");
    assert_eq!(r.body["bindings"][0]["granted_by"], "ann");
    assert_eq!(r.body["effective_access"], json!([{"username": "bob", "roles": ["project_user"]}]));
    app.get("/api/v1/workspaces/ws/projects/nope", &ann).await.expect_problem(404, None);
}

async fn ac1_binding_a_non_member_is_refused(app: TestApp) {
    let ann = setup(&app).await;
    app.user("zed").await;
    let before = app.snapshot().await;
    let r = app
        .post(BINDINGS, &ann, json!({"user": "zed", "role": "project_user"}))
        .await
        .expect_problem(422, Some("user"));
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("not a member of workspace ws"));
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "devs", "display_name": "Devs"}))
        .await
        .expect(201);
    let before_group = app.snapshot().await;
    app.post(BINDINGS, &ann, json!({"group": "devs", "role": "project_user"})).await.expect_problem(422, Some("group"));
    assert_eq!(app.snapshot().await, before_group);
    app.post(BINDINGS, &ann, json!({"user": "ghost", "role": "project_user"})).await.expect_problem(422, Some("user"));
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "no_such_role"})).await.expect_problem(422, Some("role"));
    app.post(BINDINGS, &ann, json!({"user": "bob", "group": "devs", "role": "project_user"}))
        .await
        .expect_problem(422, Some("user"));
    app.post(BINDINGS, &ann, json!({"role": "project_user"})).await.expect_problem(422, Some("user"));
    assert_eq!(before.len(), app.snapshot().await.len());
    // a member through a group may be bound as a user
    app.post("/api/v1/groups/devs/members", &app.admin_token, json!({"user": "zed"})).await.expect(201);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    app.post(BINDINGS, &ann, json!({"user": "zed", "role": "project_user"})).await.expect(201);
}

async fn ac2_subject_holds_several_roles_on_one_project(app: TestApp) {
    let ann = setup(&app).await;
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_reader"})).await.expect(201);
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_admin"})).await.expect(201);
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_admin"})).await.expect_problem(409, Some("role"));
    let eff = effective(&app, &ann, "web").await;
    let mut roles = roles_of(&eff, "bob");
    roles.sort();
    assert_eq!(roles, ["project_admin", "project_reader"]);
}

async fn ac3_group_binding_reaches_members_joining_and_leaving(app: TestApp) {
    let ann = setup(&app).await;
    let admin = app.admin_token.clone();
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Devs"})).await.expect(201);
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "bob"})).await.expect(201);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    app.post(BINDINGS, &ann, json!({"group": "devs", "role": "project_user"})).await.expect(201);
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "bob"), ["project_user"]);
    assert!(roles_of(&effective(&app, &ann, "web").await, "cid").is_empty());

    // cid joins later: gains it
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "cid"})).await.expect(201);
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "cid"), ["project_user"]);
    let cid = app.sign_in("cid", "password-of-cid").await;
    let me = app.get("/api/v1/me", &cid).await.expect(200);
    assert_eq!(me.body["projects"], json!([{"workspace": "ws", "project": "web", "roles": ["project_user"]}]));

    // bob leaves: loses it
    app.delete("/api/v1/groups/devs/members/bob", &admin).await.expect(204);
    assert!(roles_of(&effective(&app, &ann, "web").await, "bob").is_empty());
    // the membership change is in the workspace history
    let h = app.get("/api/v1/workspaces/ws/history?kind=group_member_removed", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["user"], "bob");
}

async fn ac4_default_roles_and_admin_configured_roles(app: TestApp) {
    let ann = setup(&app).await;
    let r = app.get("/api/v1/project-roles", &ann).await.expect(200);
    let ids: Vec<_> =
        r.body["items"].as_array().unwrap().iter().map(|r| r["identifier"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["project_reader", "project_user", "project_admin"]);
    // only admins configure roles
    app.post("/api/v1/project-roles", &ann, json!({"identifier": "auditor", "display_name": "Auditor"}))
        .await
        .expect_problem(403, None);
    app.post(
        "/api/v1/project-roles",
        &app.admin_token,
        json!({"identifier": "auditor", "display_name": "Auditor", "description": "Reads bills"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/project-roles", &app.admin_token, json!({"identifier": "auditor", "display_name": "Again"}))
        .await
        .expect_problem(409, Some("identifier"));
    app.post("/api/v1/project-roles", &app.admin_token, json!({"identifier": "Bad Role", "display_name": "X"}))
        .await
        .expect_problem(422, Some("identifier"));
    app.patch("/api/v1/project-roles/auditor", &app.admin_token, json!({"display_name": "Cost Auditor"}))
        .await
        .expect(200);
    let b = app.post(BINDINGS, &ann, json!({"user": "bob", "role": "auditor"})).await.expect(201);
    // a role in use cannot be deleted
    app.delete("/api/v1/project-roles/auditor", &app.admin_token).await.expect_problem(409, None);
    app.delete(&format!("{BINDINGS}/{}", b.body["id"].as_str().unwrap()), &ann).await.expect(204);
    app.delete("/api/v1/project-roles/auditor", &app.admin_token).await.expect(204);
}

async fn ac5_change_the_role_of_a_binding(app: TestApp) {
    let ann = setup(&app).await;
    let b = app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_reader"})).await.expect(201);
    let id = b.body["id"].as_str().unwrap().to_owned();
    let r = app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"role": "project_admin"})).await.expect(200);
    assert_eq!(r.body["role"], "project_admin");
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "bob"), ["project_admin"]);
    let h = app.get("/api/v1/workspaces/ws/history?kind=binding_changed", &ann).await.expect(200);
    let d = &h.body["items"][0]["details"];
    assert_eq!(d["old"]["role"], "project_reader");
    assert_eq!(d["new"]["role"], "project_admin");
    // to a role the subject already holds: conflict, nothing changes
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"role": "project_user"}))
        .await
        .expect_problem(409, Some("role"));
    app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"role": "nope"})).await.expect_problem(422, Some("role"));
    // moving onto a role whose binding has expired replaces it, recorded in the history
    let expired = app
        .post(BINDINGS, &ann, json!({"user": "bob", "role": "project_reader", "expires_at": "2026-11-23T11:00:00Z"}))
        .await
        .expect(201);
    app.clock.advance(Duration::hours(2));
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"role": "project_reader"})).await.expect(200);
    let h = app.get("/api/v1/workspaces/ws/history?limit=2", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["kind"], "binding_changed");
    assert_eq!(h.body["items"][1]["kind"], "binding_removed");
    assert_eq!(h.body["items"][1]["details"]["binding"], expired.body["id"]);
    app.patch(&format!("{BINDINGS}/not-a-uuid"), &ann, json!({"role": "project_user"})).await.expect_problem(404, None);
}

async fn ac6_removed_binding_can_be_added_again(app: TestApp) {
    let ann = setup(&app).await;
    let b = app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    app.delete(&format!("{BINDINGS}/{}", b.body["id"].as_str().unwrap()), &ann).await.expect(204);
    assert!(roles_of(&effective(&app, &ann, "web").await, "bob").is_empty());
    let bob = app.sign_in("bob", "password-of-bob").await;
    assert_eq!(app.get("/api/v1/me", &bob).await.body["projects"], json!([]));
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "bob"), ["project_user"]);
    app.delete(&format!("{BINDINGS}/{}", b.body["id"].as_str().unwrap()), &ann).await.expect_problem(404, None);
}

async fn ac7_expiration_date_is_set_changed_and_ends_access(app: TestApp) {
    let ann = setup(&app).await;
    let r = app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user", "expires_at": "2026-11-24T10:00:00Z", "justification": "incident 42"})).await.expect(201);
    assert_eq!(r.body["expires_at"], "2026-11-24T10:00:00Z");
    assert_eq!(r.body["in_force"], true);
    assert_eq!(r.body["justification"], "incident 42");
    let id = r.body["id"].as_str().unwrap().to_owned();
    // in the past: refused, nothing written
    let before = app.snapshot().await;
    app.post(BINDINGS, &ann, json!({"user": "cid", "role": "project_user", "expires_at": "2026-11-23T09:00:00Z"}))
        .await
        .expect_problem(422, Some("expires_at"));
    app.post(BINDINGS, &ann, json!({"user": "cid", "role": "project_user", "expires_at": "tomorrow"}))
        .await
        .expect_problem(422, Some("expires_at"));
    assert_eq!(app.snapshot().await, before);
    // times given with an offset are kept and reported in UTC, the history too
    let r = app
        .post(
            BINDINGS,
            &ann,
            json!({"user": "cid", "role": "project_reader", "expires_at": "2026-12-01T12:00:00+02:00"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["expires_at"], "2026-12-01T10:00:00Z");
    let h = app.get("/api/v1/workspaces/ws/history?kind=binding_created", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["expires_at"], "2026-12-01T10:00:00Z");
    app.delete(&format!("{BINDINGS}/{}", r.body["id"].as_str().unwrap()), &ann).await.expect(204);
    // changed later
    app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"expires_at": "2026-11-25T11:00:00Z"})).await.expect(200);
    // once the instant passes the binding no longer grants access, on every read path
    app.clock.advance(Duration::days(2));
    let ann = app.sign_in("ann", "password-of-ann").await;
    let r = app.get(BINDINGS, &ann).await.expect(200);
    assert_eq!(r.body["items"][0]["in_force"], true);
    app.clock.advance(Duration::hours(1));
    // (sessions last 12 hours: sign in again after the clock moved two days)
    let ann = app.sign_in("ann", "password-of-ann").await;
    let r = app.get(BINDINGS, &ann).await.expect(200);
    assert_eq!(r.body["items"][0]["in_force"], false);
    assert!(roles_of(&effective(&app, &ann, "web").await, "bob").is_empty());
    let bob = app.sign_in("bob", "password-of-bob").await;
    assert_eq!(app.get("/api/v1/me", &bob).await.body["projects"], json!([]));
    // binding the same role again replaces the expired binding
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "bob"), ["project_user"]);
    let r = app.get(BINDINGS, &ann).await.expect(200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // null removes the expiry
    let id = r.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"expires_at": "2027-01-01T00:00:00Z"})).await.expect(200);
    let r = app.patch(&format!("{BINDINGS}/{id}"), &ann, json!({"expires_at": null})).await.expect(200);
    assert!(r.body["expires_at"].is_null());
}

async fn ac9_type_ahead_finds_users_and_groups(app: TestApp) {
    let ann = setup(&app).await;
    app.post("/api/v1/users", &app.admin_token,
        json!({"username": "jdoe", "email": "jane.doe@corp.example", "first_name": "Jane", "last_name": "Doe", "password": "password-of-jdoe"})).await.expect(201);
    app.invite(&ann, "ws", "jdoe", "workspace_member").await;
    app.post(
        "/api/v1/groups",
        &app.admin_token,
        json!({"identifier": "platform-team", "display_name": "Platform Engineers"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "platform-team", "role": "workspace_member"}))
        .await
        .expect(201);
    // a user outside the workspace is never found
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "jane2", "email": "jane2@corp.example", "first_name": "Jane", "last_name": "Outside"}),
    )
    .await
    .expect(201);

    let names = |r: &Value| -> Vec<String> {
        r["items"].as_array().unwrap().iter().map(|i| i["subject"].as_str().unwrap().to_owned()).collect()
    };
    for q in ["jan", "DOE", "jane.doe@", "jdo", "Jane Doe"] {
        let r = app.get(&format!("/api/v1/workspaces/ws/search?q={}", q.replace(' ', "%20")), &ann).await.expect(200);
        assert_eq!(names(&r.body), ["user:jdoe"], "query {q:?}");
    }
    let r = app.get("/api/v1/workspaces/ws/search?q=platform", &ann).await.expect(200);
    assert_eq!(names(&r.body), ["group:platform-team"]);
    let r = app.get("/api/v1/workspaces/ws/search?q=engineers", &ann).await.expect(200);
    assert_eq!(names(&r.body), ["group:platform-team"]);
    let r = app.get("/api/v1/workspaces/ws/search?q=%25", &ann).await.expect(200);
    assert!(names(&r.body).is_empty(), "% is matched literally");
    app.get("/api/v1/workspaces/ws/search?q=", &ann).await.expect_problem(422, Some("q"));
    app.get("/api/v1/workspaces/ws/search", &ann).await.expect_problem(422, Some("q"));
}

async fn ac10_deactivated_user_loses_all_access(app: TestApp) {
    let ann = setup(&app).await;
    let bob = app.sign_in("bob", "password-of-bob").await;
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    let key = app
        .post("/api/v1/api-keys", &bob, json!({"name": "bob's key", "workspace": "ws", "role": "workspace_member"}))
        .await
        .expect(201);
    let key = key.body["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/workspaces/ws/projects", &key).await.expect(200);

    let r = app.patch("/api/v1/users/bob", &app.admin_token, json!({"active": false})).await.expect(200);
    assert_eq!(r.body["active"], false);
    // sessions and keys stop working, sign-in is refused
    app.get("/api/v1/me", &bob).await.expect_problem(401, None);
    app.get("/api/v1/workspaces/ws/projects", &key).await.expect_problem(401, None);
    app.request("POST", "/api/v1/auth/token", None, Some(json!({"username": "bob", "password": "password-of-bob"})))
        .await
        .expect_problem(401, None);
    // no effective access anywhere, and no new access can be given
    assert!(roles_of(&effective(&app, &ann, "web").await, "bob").is_empty());
    app.post(BINDINGS, &ann, json!({"user": "bob", "role": "project_reader"})).await.expect_problem(422, Some("user"));
    // the workspace history shows it
    let h = app.get("/api/v1/workspaces/ws/history?kind=user_deactivated", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["user"], "bob");
    // reactivation restores what the bindings give
    app.patch("/api/v1/users/bob", &app.admin_token, json!({"active": true})).await.expect(200);
    assert_eq!(roles_of(&effective(&app, &ann, "web").await, "bob"), ["project_user"]);
}

async fn ac10_concurrent_deactivations_and_deletions_all_succeed(app: TestApp) {
    // Each change appends to several history chains; taken in different
    // orders they would deadlock on PostgreSQL.
    let ann = app.user("ann").await;
    app.workspace(&ann, "dw").await;
    for i in 0..16 {
        let name = format!("u{i}");
        app.post("/api/v1/users", &app.admin_token, json!({"username": name, "email": format!("{name}@example.org")}))
            .await
            .expect(201);
        app.invite(&ann, "dw", &name, "workspace_member").await;
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/api/v1/users/u{i}");
            let r = if i % 2 == 0 {
                app.patch(&path, &app.admin_token, json!({"active": false})).await
            } else {
                app.delete(&path, &app.admin_token).await
            };
            (i, r.status.as_u16(), r.body)
        }));
    }
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        assert!(matches!(status, 200 | 204), "u{i}: {status} {body:#}");
    }
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200);
    assert_eq!(v.body["ok"], true);
}

async fn ad1_admin_manages_any_workspace_without_membership(app: TestApp) {
    let ann = setup(&app).await;
    let admin = app.admin_token.clone();
    app.get("/api/v1/workspaces/ws", &admin).await.expect(200);
    app.post("/api/v1/workspaces/ws/members", &admin, json!({"user": "bob", "role": "workspace_manager"}))
        .await
        .expect_problem(409, Some("user"));
    app.patch("/api/v1/workspaces/ws/members/user:bob", &admin, json!({"role": "workspace_manager"})).await.expect(200);
    app.post("/api/v1/workspaces/ws/projects", &admin, json!({"identifier": "ops", "display_name": "Ops"}))
        .await
        .expect(201);
    let b = app
        .post("/api/v1/workspaces/ws/projects/ops/bindings", &admin, json!({"user": "cid", "role": "project_admin"}))
        .await
        .expect(201);
    assert_eq!(b.body["granted_by"], "admin");
    app.get("/api/v1/workspaces/ws/history", &admin).await.expect(200);
    let all = app.get("/api/v1/admin/workspaces", &admin).await.expect(200);
    assert_eq!(all.body["items"][0]["identifier"], "ws");
    app.get("/api/v1/admin/workspaces", &ann).await.expect_problem(403, None);
}

canopy_testkit::backend_tests! {
    pr1_create_project_with_identifier_rules,
    pr2_project_page_lists_projects_and_current_access,
    ac1_binding_a_non_member_is_refused,
    ac2_subject_holds_several_roles_on_one_project,
    ac3_group_binding_reaches_members_joining_and_leaving,
    ac4_default_roles_and_admin_configured_roles,
    ac5_change_the_role_of_a_binding,
    ac6_removed_binding_can_be_added_again,
    ac7_expiration_date_is_set_changed_and_ends_access,
    ac9_type_ahead_finds_users_and_groups,
    ac10_deactivated_user_loses_all_access,
    ac10_concurrent_deactivations_and_deletions_all_succeed,
    ad1_admin_manages_any_workspace_without_membership,
}
