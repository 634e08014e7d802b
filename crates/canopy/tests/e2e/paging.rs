//! Lists page in SQL with keyset cursors (issue 13): a walk over a large
//! collection returns every item once, in order, whatever its size.

use std::collections::BTreeSet;

use canopy_testkit::TestApp;
use serde_json::{Value, json};

/// Every page of a list, following `next_cursor` until it ends.
async fn walk(app: &TestApp, token: &str, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}?limit={limit}"),
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
        };
        let page = app.get(&url, token).await.expect(200);
        let got = page.body["items"].as_array().unwrap().clone();
        assert!(got.len() <= limit as usize, "a page holds at most its limit");
        items.extend(got);
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// `n` accounts `bulk-1`..`bulk-n` and one binding of each to `project`
/// as project reader, written straight into the database (the API would
/// take minutes for as many).
async fn bulk_bindings(app: &TestApp, project: &str, n: u32) {
    let seq = format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})");
    app.sql(&format!(
        "{seq} INSERT INTO users (id, username, email, first_name, last_name, active, created_at) \
         SELECT '00000000-0000-4000-8000-' || CAST(100000000000 + i AS TEXT), 'bulk-' || CAST(i AS TEXT), \
                'bulk-' || CAST(i AS TEXT) || '@example.org', 'Bulk', CAST(i AS TEXT), 1, 0 FROM n"
    ))
    .await;
    app.sql(&format!(
        "{seq} INSERT INTO bindings (id, project_id, workspace_id, user_id, role_id, granted_by, granted_at) \
         SELECT '10000000-0000-4000-8000-' || CAST(100000000000 + i AS TEXT), \
                (SELECT id FROM projects WHERE identifier = '{project}'), \
                (SELECT workspace_id FROM projects WHERE identifier = '{project}'), \
                '00000000-0000-4000-8000-' || CAST(100000000000 + i AS TEXT), \
                (SELECT id FROM project_roles WHERE identifier = 'project_reader'), 'admin', 0 FROM n"
    ))
    .await;
}

async fn if1_a_cursor_walk_over_10000_bindings_returns_each_once_in_order(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    app.project(&ann, "ws", "big").await;
    bulk_bindings(&app, "big", 10_000).await;

    let items = walk(&app, &ann, "/api/v1/workspaces/ws/projects/big/bindings", 500).await;
    let ids: Vec<String> = items.iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 10_000, "every binding is listed");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 10_000, "each once");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "in id order across pages");
    assert!(items.iter().all(|b| b["role"] == "project_reader" && b["kind"] == "user"));

    // a small page of the same project answers the same way
    let first = app.get("/api/v1/workspaces/ws/projects/big/bindings?limit=3", &ann).await.expect(200);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 3);
    assert!(first.body["next_cursor"].is_string());
}

async fn ws5_current_access_pages_members_groups_and_invitations_in_order(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for name in ["bob", "cy", "dee"] {
        app.user(name).await;
        app.invite(&ann, "ws", name, "workspace_member").await;
    }
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Developers"})).await.expect(201);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    for email in ["x@example.org", "y@example.org"] {
        app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": email, "role": "workspace_member"}))
            .await
            .expect(201);
    }
    let whole = app.get("/api/v1/workspaces/ws/members?limit=500", &ann).await.expect(200);
    let subjects =
        |items: &[Value]| -> Vec<String> { items.iter().map(|m| m["subject"].as_str().unwrap().to_owned()).collect() };
    let expected = subjects(whole.body["items"].as_array().unwrap());
    assert_eq!(
        expected,
        ["email:x@example.org", "email:y@example.org", "group:devs", "user:ann", "user:bob", "user:cy", "user:dee"]
    );
    for limit in [1, 2, 3] {
        let items = walk(&app, &ann, "/api/v1/workspaces/ws/members", limit).await;
        assert_eq!(subjects(&items), expected, "pages of {limit}");
    }
    let forged = app.get("/api/v1/workspaces/ws/members?cursor=dXNlcg", &ann).await; // "user", no name
    forged.expect_problem(422, Some("cursor"));
}

canopy_testkit::backend_tests! {
    if1_a_cursor_walk_over_10000_bindings_returns_each_once_in_order,
    ws5_current_access_pages_members_groups_and_invitations_in_order,
}
