//! Bad input: a clear 4xx problem naming the field, never a 500, never a
//! partial write.

use canopy_testkit::TestApp;
use serde_json::json;

async fn if1_malformed_and_mistyped_bodies_are_named_problems(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let before = app.snapshot().await;
    let ws = "/api/v1/workspaces";

    let r = app
        .request_raw("POST", ws, Some(&ann), "application/json", "{\"identifier\": ")
        .await
        .expect_problem(400, None);
    assert_eq!(r.body["code"], "bad_request");
    app.request_raw("POST", ws, Some(&ann), "text/plain", "{}").await.expect_problem(400, None);
    app.request_raw("POST", ws, Some(&ann), "application/json", "[1, 2]").await.expect_problem(422, None);
    // missing field
    let r = app.post(ws, &ann, json!({"display_name": "X"})).await.expect_problem(422, Some("identifier"));
    assert_eq!(r.body["errors"][0]["message"], "is required");
    // wrong type
    app.post(ws, &ann, json!({"identifier": 42, "display_name": "X"})).await.expect_problem(422, Some("identifier"));
    // unknown field (a typo is not silently ignored)
    app.post(ws, &ann, json!({"identifier": "x", "display_name": "X", "dispaly_name": "Y"}))
        .await
        .expect_problem(422, Some("dispaly_name"));
    // nested field path
    app.post("/api/v1/workspaces/ws/projects", &ann, json!({"identifier": ["x"], "display_name": "X"}))
        .await
        .expect_problem(422, Some("identifier"));
    app.patch("/api/v1/workspaces/ws", &ann, json!({"display_name": ""}))
        .await
        .expect_problem(422, Some("display_name"));
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"user": "ann", "role": "king"}))
        .await
        .expect_problem(422, Some("role"));
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"user": "ghost", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("user"));
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "ghosts", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("group"));
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "not-an-address", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("email"));
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"role": "workspace_member"}))
        .await
        .expect_problem(422, Some("user"));
    app.get("/api/v1/workspaces?limit=100000", &ann).await.expect_problem(422, Some("limit"));
    app.get("/api/v1/workspaces?limit=-1", &ann).await.expect_problem(422, Some("limit"));
    assert_eq!(app.snapshot().await, before, "no refused request wrote anything");
}

async fn if1_unknown_resources_are_404_problems(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let before = app.snapshot().await;
    for path in [
        "/api/v1/workspaces/nope",
        "/api/v1/workspaces/nope/members",
        "/api/v1/workspaces/ws/projects/nope",
        "/api/v1/workspaces/ws/projects/nope/bindings",
        "/api/v1/groups/nope",
        "/api/v1/users/nope",
    ] {
        let token =
            if path.contains("users") || path.contains("groups") { app.admin_token.clone() } else { ann.clone() };
        let r = app.get(path, &token).await.expect_problem(404, None);
        assert_eq!(r.body["code"], "not_found", "{path}");
    }
    app.patch("/api/v1/workspaces/ws/members/user:ghost", &ann, json!({"role": "workspace_member"}))
        .await
        .expect_problem(404, None);
    app.patch("/api/v1/workspaces/ws/members/robot:x", &ann, json!({"role": "workspace_member"}))
        .await
        .expect_problem(404, None);
    app.delete("/api/v1/workspaces/ws/members/email:nobody@example.org", &ann).await.expect_problem(404, None);
    app.delete("/api/v1/groups/nope/members/ann", &app.admin_token).await.expect_problem(404, None);
    app.delete("/api/v1/api-keys/nope", &ann).await.expect_problem(404, None);
    app.patch("/api/v1/project-roles/nope", &app.admin_token, json!({"display_name": "X"}))
        .await
        .expect_problem(404, None);
    assert_eq!(app.snapshot().await, before);
}

async fn if1_nul_characters_and_unreadable_paths_are_client_errors(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let before = app.snapshot().await;
    let r = app.get("/api/v1/workspaces/a%00b", &ann).await.expect_problem(404, None);
    assert_eq!(r.body["code"], "not_found");
    app.get("/api/v1/workspaces/%FF", &ann).await.expect_problem(404, None);
    app.get("/api/v1/workspaces?cursor=AA", &ann).await.expect_problem(422, Some("cursor"));
    app.get("/api/v1/workspaces/ws/history?initiator=a%00", &ann).await.expect_problem(400, None);
    app.post("/api/v1/workspaces", &ann, json!({"identifier": "x", "display_name": "a\u{0}b"}))
        .await
        .expect_problem(400, None);
    app.request("POST", "/api/v1/auth/token", None, Some(json!({"username": "a\u{0}", "password": "x"})))
        .await
        .expect_problem(400, None);
    // misspelt filters are errors, not silently ignored
    app.get("/api/v1/workspaces/ws/history?initator=ann", &ann).await.expect_problem(422, Some("initator"));
    app.get("/api/v1/workspaces?limt=1", &ann).await.expect_problem(422, Some("limt"));
    assert_eq!(app.snapshot().await, before);
    // a literal backslash followed by "u0000" is ordinary text
    app.post("/api/v1/workspaces", &ann, json!({"identifier": "lit", "display_name": "C:\\u0000dir"}))
        .await
        .expect(201);
    app.delete("/api/v1/workspaces/lit", &ann).await.expect(204);
}

canopy_testkit::backend_tests! {
    if1_nul_characters_and_unreadable_paths_are_client_errors,
    if1_malformed_and_mistyped_bodies_are_named_problems,
    if1_unknown_resources_are_404_problems,
}
