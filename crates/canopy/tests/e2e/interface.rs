//! IF1 and authorisation across every endpoint: the served OpenAPI document
//! matches the routes, and every endpoint refuses whom it must.

use canopy_testkit::TestApp;
use serde_json::{Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No authentication (sign-in).
    Public,
    /// Any signed-in caller.
    Anyone,
    /// The user named in the path, or admins (the path names bob, a third person).
    SelfOrAdmin,
    /// The key's creator, or admins (the path names ann's key).
    CreatorOrAdmin,
    Admin,
    WorkspaceMember,
    WorkspaceManager,
    WorkspaceOwner,
}

/// Every documented operation: method, path, who may call it, and a valid body.
fn operations() -> Vec<(&'static str, &'static str, Access, Option<Value>)> {
    use Access::*;
    let ws = "/api/v1/workspaces/{ws}";
    let p = "/api/v1/workspaces/{ws}/projects/{project}";
    vec![
        ("post", "/api/v1/auth/token", Public, Some(json!({"username": "x", "password": "y"}))),
        ("get", "/api/v1/me", Anyone, None),
        ("get", "/api/v1/users", Admin, None),
        ("post", "/api/v1/users", Admin, Some(json!({"username": "newbie", "email": "newbie@example.org"}))),
        ("get", "/api/v1/users/{user}", SelfOrAdmin, None),
        ("patch", "/api/v1/users/{user}", SelfOrAdmin, Some(json!({"first_name": "Robert"}))),
        ("delete", "/api/v1/users/{user}", Admin, None),
        ("delete", "/api/v1/users/{user}/sessions", SelfOrAdmin, None),
        ("get", "/api/v1/groups", Anyone, None),
        ("post", "/api/v1/groups", Admin, Some(json!({"identifier": "newgroup", "display_name": "New"}))),
        ("get", "/api/v1/groups/{group}", Anyone, None),
        ("patch", "/api/v1/groups/{group}", Admin, Some(json!({"display_name": "Renamed"}))),
        ("delete", "/api/v1/groups/{group}", Admin, None),
        // admins, and managers of a workspace the group belongs to (devs belongs to none)
        ("get", "/api/v1/groups/{group}/members", Admin, None),
        ("post", "/api/v1/groups/{group}/members", Admin, Some(json!({"user": "ann"}))),
        ("delete", "/api/v1/groups/{group}/members/{user}", Admin, None),
        ("get", "/api/v1/api-keys", Anyone, None),
        ("post", "/api/v1/api-keys", Admin, Some(json!({"name": "k", "role": "admin"}))),
        ("delete", "/api/v1/api-keys/{id}", CreatorOrAdmin, None),
        ("get", "/api/v1/workspaces", Anyone, None),
        ("post", "/api/v1/workspaces", Anyone, Some(json!({"identifier": "fresh", "display_name": "Fresh"}))),
        ("get", ws, WorkspaceMember, None),
        ("patch", ws, WorkspaceManager, Some(json!({"display_name": "Renamed"}))),
        ("delete", ws, WorkspaceOwner, None),
        ("get", "/api/v1/workspaces/{ws}/members", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/members",
            WorkspaceManager,
            Some(json!({"email": "someone@example.org", "role": "workspace_member"})),
        ),
        (
            "patch",
            "/api/v1/workspaces/{ws}/members/{subject}",
            WorkspaceManager,
            Some(json!({"role": "workspace_manager"})),
        ),
        ("delete", "/api/v1/workspaces/{ws}/members/{subject}", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/search", WorkspaceMember, None),
        ("get", "/api/v1/workspaces/{ws}/projects", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects",
            WorkspaceManager,
            Some(json!({"identifier": "newp", "display_name": "New"})),
        ),
        ("get", p, WorkspaceMember, None),
        ("patch", p, WorkspaceManager, Some(json!({"display_name": "Renamed"}))),
        ("delete", p, WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/bindings", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/bindings",
            WorkspaceManager,
            Some(json!({"user": "mem", "role": "project_admin"})),
        ),
        (
            "patch",
            "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}",
            WorkspaceManager,
            Some(json!({"role": "project_reader"})),
        ),
        ("delete", "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/tenants",
            WorkspaceManager,
            Some(json!({"platform": "k8s"})),
        ),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", WorkspaceMember, None),
        ("delete", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/deletion", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/deletion/confirm",
            WorkspaceManager,
            Some(json!({"identifier": "web"})),
        ),
        ("post", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/replicate", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/plan", WorkspaceManager, None),
        ("get", "/api/v1/project-roles", Anyone, None),
        ("post", "/api/v1/project-roles", Admin, Some(json!({"identifier": "newrole", "display_name": "New"}))),
        ("patch", "/api/v1/project-roles/{role}", Admin, Some(json!({"display_name": "Renamed"}))),
        ("delete", "/api/v1/project-roles/{role}", Admin, None),
        ("get", "/api/v1/workspaces/{ws}/history", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/history/{event}", WorkspaceManager, None),
        ("get", "/api/v1/admin/workspaces", Admin, None),
        ("get", "/api/v1/admin/history", Admin, None),
        ("get", "/api/v1/platforms", Anyone, None),
        (
            "post",
            "/api/v1/platforms",
            Admin,
            Some(json!({"identifier": "new", "type": "kubernetes",
            "settings": {"api_url": "https://k"}, "secrets": {"token": "t"}})),
        ),
        ("get", "/api/v1/platforms/{platform}", Anyone, None),
        ("patch", "/api/v1/platforms/{platform}", Admin, Some(json!({"landing_zone_required": true}))),
        ("delete", "/api/v1/platforms/{platform}", Admin, None),
        ("get", "/api/v1/platforms/{platform}/landing-zones", Anyone, None),
        (
            "post",
            "/api/v1/platforms/{platform}/landing-zones",
            Admin,
            Some(json!({"identifier": "z2", "display_name": "Z"})),
        ),
        ("get", "/api/v1/platforms/{platform}/landing-zones/{zone}", Anyone, None),
        ("patch", "/api/v1/platforms/{platform}/landing-zones/{zone}", Admin, Some(json!({"display_name": "Renamed"}))),
        ("delete", "/api/v1/platforms/{platform}/landing-zones/{zone}", Admin, None),
        ("get", "/api/v1/platforms/{platform}/deletions", Admin, None),
        ("post", "/api/v1/platforms/{platform}/deletions/{id}/confirm", Admin, None),
        ("post", "/api/v1/platforms/{platform}/deletions/{id}/decline", Admin, None),
        ("get", "/api/v1/admin/history/verify", Admin, None),
        ("post", "/api/v1/admin/history/verify", Admin, Some(json!({"checkpoints": []}))),
        ("get", "/api/v1/admin/history/checkpoints", Admin, None),
        (
            "post",
            "/api/v1/admin/emergency/grant",
            WorkspaceManager,
            Some(json!({"user": "bob", "workspace": "ws", "project": "web", "role": "project_admin",
                "expires_at": "2099-01-01T00:00:00Z", "justification": "incident 42"})),
        ),
        ("post", "/api/v1/admin/emergency/revoke", Admin, Some(json!({"user": "bob", "justification": "incident 42"}))),
        ("get", "/api/v1/admin/emergency/revocations/{id}", Admin, None),
        ("get", "/api/v1/workspaces/{ws}/expired-access", WorkspaceManager, None),
        ("get", "/api/v1/expired-access", Admin, None),
        ("get", "/api/v1/tag-definitions", Anyone, None),
        (
            "post",
            "/api/v1/tag-definitions",
            Admin,
            Some(json!({"key": "cost-centre", "display_name": "Cost centre", "type": "string"})),
        ),
        ("patch", "/api/v1/tag-definitions/{tag}", Admin, Some(json!({"display_name": "Cost center"}))),
        ("delete", "/api/v1/tag-definitions/{tag}", Admin, None),
        ("get", "/api/v1/workspaces/{ws}/payment-methods", WorkspaceMember, None),
        (
            "post",
            "/api/v1/workspaces/{ws}/payment-methods",
            WorkspaceManager,
            Some(json!({"name": "Card", "amount": 100.0, "expires_on": "2099-01-31"})),
        ),
        ("patch", "/api/v1/workspaces/{ws}/payment-methods/{id}", WorkspaceManager, Some(json!({"amount": 5.0}))),
        ("delete", "/api/v1/workspaces/{ws}/payment-methods/{id}", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/payment-methods/forecast", WorkspaceManager, None),
        ("get", "/api/v1/settings", Admin, None),
        ("patch", "/api/v1/settings", Admin, Some(json!({"payment_substitutes": true}))),
        ("get", "/api/v1/workspaces/{ws}/requests", WorkspaceManager, None),
        ("get", "/api/v1/workspaces/{ws}/requests/{id}", WorkspaceManager, None),
        ("post", "/api/v1/workspaces/{ws}/requests/{id}/approve", WorkspaceManager, None),
        ("post", "/api/v1/workspaces/{ws}/requests/{id}/decline", WorkspaceManager, None),
        ("get", "/api/v1/admin/requests", Admin, None),
        // last: it ends the caller's session
        ("delete", "/api/v1/auth/token", Anyone, None),
    ]
}

/// The documented operations of the served OpenAPI document.
async fn documented(app: &TestApp) -> Vec<(String, String)> {
    let doc = app.request("GET", "/api/v1/openapi.json", None, None).await.expect(200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
    let mut ops = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

/// ws (owner ann, manager mia, member mem), project web with a binding of
/// mem, group devs, bob outside; another workspace owned by the outsider.
struct World {
    ann: String,
    mem: String,
    out: String,
    binding: String,
    key: String,
    event: String,
}

async fn world(app: &TestApp) -> World {
    let ann = app.user("ann").await;
    let mem = app.user("mem").await;
    let out = app.user("out").await;
    app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.workspace(&out, "other").await;
    app.invite(&ann, "ws", "mem", "workspace_member").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.project(&ann, "ws", "web").await;
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "devs", "display_name": "Devs"}))
        .await
        .expect(201);
    app.post("/api/v1/groups/devs/members", &app.admin_token, json!({"user": "bob"})).await.expect(201);
    let b = app
        .post("/api/v1/workspaces/ws/projects/web/bindings", &ann, json!({"user": "mem", "role": "project_user"}))
        .await
        .expect(201);
    let k8s = json!({"identifier": "k8s", "type": "kubernetes", "settings": {"api_url": "https://k"}, "secrets": {"token": "t"}});
    app.post("/api/v1/platforms", &app.admin_token, k8s).await.expect(201);
    let zone = json!({"identifier": "default", "display_name": "Default"});
    app.post("/api/v1/platforms/k8s/landing-zones", &app.admin_token, zone).await.expect(201);
    let k = app
        .post("/api/v1/api-keys", &ann, json!({"name": "anns", "workspace": "ws", "role": "workspace_member"}))
        .await
        .expect(201);
    let h = app.get("/api/v1/workspaces/ws/history", &ann).await.expect(200);
    World {
        ann,
        mem,
        out,
        binding: b.body["id"].as_str().unwrap().to_owned(),
        key: k.body["key"]["id"].as_str().unwrap().to_owned(),
        event: h.body["items"][0]["id"].as_str().unwrap().to_owned(),
    }
}

fn fill(path: &str, w: &World) -> String {
    let id = if path.starts_with("/api/v1/api-keys") { &w.key } else { &w.binding };
    let mut p = path
        .replace("{ws}", "ws")
        .replace("{project}", "web")
        .replace("{group}", "devs")
        .replace("{subject}", "user:bob")
        .replace("{role}", "project_user")
        .replace("{event}", &w.event)
        .replace("{id}", id)
        .replace("{user}", "bob")
        .replace("{platform}", "k8s")
        .replace("{zone}", "default")
        .replace("{tag}", "cost-centre");
    if p.ends_with("/search") {
        p.push_str("?q=b");
    }
    p
}

async fn if1_served_openapi_document_matches_the_routes(app: TestApp) {
    let w = world(&app).await;
    let documented = documented(&app).await;
    let mut table: Vec<(String, String)> =
        operations().iter().map(|(m, p, _, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    table.sort();
    assert_eq!(
        documented, table,
        "the documented operations and this test's table differ: document new endpoints in both"
    );
    // every documented operation is served: no fallback 404 (`no_route`) and no 405
    for (method, path) in &documented {
        let r = app.request(&method.to_uppercase(), &fill(path, &w), Some(&app.admin_token), Some(json!({}))).await;
        assert_ne!(r.status.as_u16(), 405, "{method} {path} is documented but not routed");
        assert_ne!(r.body["code"], "no_route", "{method} {path} is documented but not routed");
    }
    // and the router's fallback really answers `no_route` for what is not documented
    let r = app.get("/api/v1/not-a-resource", &app.admin_token).await.expect_problem(404, None);
    assert_eq!(r.body["code"], "no_route");
    let r = app.request("PUT", "/api/v1/workspaces", Some(&app.admin_token), None).await.expect_problem(405, None);
    assert_eq!(r.body["code"], "method_not_allowed");
    // every documented operation lists its success and error answers
    let doc = app.request("GET", "/api/v1/openapi.json", None, None).await.body;
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // the served document is the generated one
    assert_eq!(doc, canopy_server::openapi());
    let _ = w.ann;
}

fn refused(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

/// Every endpoint refuses an anonymous caller, a member of another workspace
/// and a plain member wherever they lack the right, and lets them through
/// where they have it (WS2, AD1, ID3).
async fn ws2_every_endpoint_refuses_anonymous_outsiders_and_plain_members(app: TestApp) {
    use Access::*;
    let w = world(&app).await;
    let _ = &w.ann;
    for (method, path, access, body) in operations() {
        let url = fill(path, &w);
        let m = method.to_uppercase();
        let what = format!("{m} {path}");

        let anon = app.request(&m, &url, None, body.clone()).await;
        if access == Public {
            assert_ne!(anon.status.as_u16(), 403, "{what}");
            continue;
        }
        assert_eq!(anon.status.as_u16(), 401, "anonymous {what}: {:#}", anon.body);
        assert_eq!(anon.content_type, "application/problem+json");

        for (who, token) in [("outsider", &w.out), ("plain member", &w.mem)] {
            let r = app.request(&m, &url, Some(token), body.clone()).await;
            let allowed = match access {
                Public | Anyone => true,
                SelfOrAdmin | CreatorOrAdmin | Admin | WorkspaceManager | WorkspaceOwner => false,
                WorkspaceMember => who == "plain member",
            };
            if allowed {
                assert!(!matches!(r.status.as_u16(), 401 | 403), "{who} should be allowed {what}: {:#}", r.body);
            } else {
                assert!(refused(r.status.as_u16()), "{who} must be refused {what}, got {}: {:#}", r.status, r.body);
                assert_eq!(r.content_type, "application/problem+json", "{what}");
            }
        }
    }
    // nothing the refused callers tried reached the state: ws and its project stand
    app.get("/api/v1/workspaces/ws/projects/web", &w.ann).await.expect(200);
}

canopy_testkit::backend_tests! {
    if1_served_openapi_document_matches_the_routes,
    ws2_every_endpoint_refuses_anonymous_outsiders_and_plain_members,
}
