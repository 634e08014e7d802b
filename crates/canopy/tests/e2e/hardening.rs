//! SE1–SE8: what a hostile client found (issue 11), each with the test that
//! failed before its fix.

use canopy_testkit::TestApp;
use serde_json::json;

/// Finding 3: a manager who is a member of group `ops` approved a request
/// binding `ops` as project_admin and so gained it.
async fn se3_nobody_approves_a_change_to_their_own_access_through_a_group(app: TestApp) {
    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    let max = app.user("max").await;
    app.user("ann").await;
    let admin = app.admin_token.clone();
    app.patch("/api/v1/settings", &admin, json!({"four_eye": {"enabled": true, "approvals": 1}})).await.expect(200);
    app.workspace(&olga, "w").await;
    app.project(&olga, "w", "web").await;
    app.invite(&olga, "w", "mia", "workspace_manager").await;
    app.invite(&olga, "w", "max", "workspace_manager").await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "ops", "display_name": "Ops"})).await.expect(201);
    for u in ["mia", "ann"] {
        app.post("/api/v1/groups/ops/members", &admin, json!({"user": u})).await.expect(201);
    }
    app.post("/api/v1/workspaces/w/members", &olga, json!({"group": "ops", "role": "workspace_member"}))
        .await
        .expect(201);
    let bindings = "/api/v1/workspaces/w/projects/web/bindings";
    let add = json!({"group": "ops", "role": "project_admin", "justification": "ops runs web"});
    let q = app.post(bindings, &olga, add).await.expect(202).body;
    let approve = format!("/api/v1/workspaces/w/requests/{}/approve", q["id"].as_str().unwrap());
    // mia is in ops: approving would give her project_admin
    let r = app.post(&approve, &mia, json!({})).await.expect_problem(403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("own access"), "{}", r.body);
    // an admin in the group is refused too
    app.post("/api/v1/groups/ops/members", &admin, json!({"user": "admin"})).await.expect(201);
    app.post(&approve, &admin, json!({})).await.expect_problem(403, None);
    assert_eq!(app.get(bindings, &olga).await.expect(200).body["items"], json!([]), "nothing bound");
    // max is not in ops and decides
    let done = app.post(&approve, &max, json!({})).await.expect(200).body;
    assert_eq!(done["state"], "approved", "{done}");
    let _ = mia;
}

/// Finding 6: a search term of 50,000+ characters hit SQLite's LIKE pattern
/// limit and answered 500. Every free-text query parameter is capped.
async fn se5_overlong_query_parameters_are_refused_naming_the_parameter(app: TestApp) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    let huge = "a".repeat(50_001);
    for path in [format!("/api/v1/workspaces/w/search?q={huge}"), format!("/api/v1/users?q={huge}")] {
        app.get(&path, &admin).await.expect_problem(422, Some("q"));
    }
    let long = "%".repeat(101);
    app.get(&format!("/api/v1/workspaces/w/search?q={long}"), &admin).await.expect_problem(422, Some("q"));
    app.get(&format!("/api/v1/users?q={long}"), &admin).await.expect_problem(422, Some("q"));
    let most = "b".repeat(100);
    app.get(&format!("/api/v1/workspaces/w/search?q={most}"), &admin).await.expect(200);
    app.get(&format!("/api/v1/users?q={most}"), &admin).await.expect(200);
    // every parameter has a bound, the opaque ones too
    let cursor = "c".repeat(2001);
    app.get(&format!("/api/v1/workspaces/w/history?cursor={cursor}"), &admin).await.expect_problem(422, Some("cursor"));
    app.get(&format!("/api/v1/workspaces?cursor={cursor}"), &admin).await.expect_problem(422, Some("cursor"));
}

/// Finding 11: `GET /groups/{g}/members` (names and e-mail addresses) had no
/// authorisation check. Admins see them, and managers of a workspace the
/// group belongs to, who decide what it may access.
async fn ws2_group_members_are_shown_only_to_admins_and_managers_of_its_workspaces(app: TestApp) {
    let admin = app.admin_token.clone();
    let olga = app.user("olga").await;
    let ann = app.user("ann").await;
    let out = app.user("out").await;
    app.workspace(&olga, "w").await;
    app.invite(&olga, "w", "ann", "workspace_member").await;
    app.workspace(&out, "elsewhere").await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "ops", "display_name": "Ops"})).await.expect(201);
    app.post("/api/v1/groups/ops/members", &admin, json!({"user": "ann"})).await.expect(201);
    let members = "/api/v1/groups/ops/members";
    // before the group is in any workspace: admins only
    assert_eq!(app.get(members, &admin).await.expect(200).body["items"][0]["email"], "ann@example.org");
    for who in [&olga, &ann, &out] {
        app.get(members, who).await.expect_problem(403, None);
    }
    app.post("/api/v1/workspaces/w/members", &olga, json!({"group": "ops", "role": "workspace_member"}))
        .await
        .expect(201);
    // the manager of a workspace holding the group sees its members; a plain
    // member (even of the group) and a manager of another workspace do not
    app.get(members, &olga).await.expect(200);
    app.get(members, &ann).await.expect_problem(403, None);
    app.get(members, &out).await.expect_problem(403, None);
    // the list of groups stays open to everyone signed in (type-ahead)
    app.get("/api/v1/groups", &out).await.expect(200);
}

canopy_testkit::backend_tests! {
    se3_nobody_approves_a_change_to_their_own_access_through_a_group,
    se5_overlong_query_parameters_are_refused_naming_the_parameter,
    ws2_group_members_are_shown_only_to_admins_and_managers_of_its_workspaces,
}
