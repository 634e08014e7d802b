//! IF1 and authorisation across every endpoint: the served OpenAPI document
//! matches the routes, and every endpoint refuses whom it must.

use canopy_domain::authz::{Action, Actor, ActorKind, action_to_grant, authorize};
use canopy_domain::{InstallationRole, WorkspaceRole};
use canopy_testkit::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

/// Where an action is asked: installation-wide, or in the workspace `ws` of
/// the test world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Installation,
    Ws,
}

/// Who may call an operation, in the terms of `canopy_domain::authz`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Needs {
    /// No authentication (sign-in).
    Public,
    /// Any signed-in caller.
    SignedIn,
    /// Every one of these actions allowed by `authorize`.
    Every(Vec<(Action, At)>),
}

/// One action, asked installation-wide.
fn to(action: Action) -> Needs {
    Needs::Every(vec![(action, At::Installation)])
}

/// One action, asked in `ws`.
fn in_ws(action: Action) -> Needs {
    Needs::Every(vec![(action, At::Ws)])
}

/// The ids of the accounts an operation's action names: `bob` (the user in
/// paths) and `ann` (who made the key in paths).
#[derive(Debug, Clone, Copy)]
struct Named {
    ann: Uuid,
    bob: Uuid,
}

/// Every documented operation: method, path, what its caller needs, and a valid body.
fn operations(named: Named) -> Vec<(&'static str, &'static str, Needs, Option<Value>)> {
    use Action::*;
    use Needs::*;
    let ws = "/api/v1/workspaces/{ws}";
    let p = "/api/v1/workspaces/{ws}/projects/{project}";
    let bob = ActOnAccount { user: Some(named.bob) };
    vec![
        ("post", "/api/v1/auth/token", Public, Some(json!({"username": "x", "password": "y"}))),
        ("post", "/api/v1/auth/sso/token", Public, Some(json!({"code": "x", "verifier": "y"}))),
        ("get", "/api/v1/me", SignedIn, None),
        ("get", "/api/v1/users", to(AdministerUsers), None),
        (
            "post",
            "/api/v1/users",
            to(AdministerUsers),
            Some(json!({"username": "newbie", "email": "newbie@example.org"})),
        ),
        ("get", "/api/v1/users/{user}", to(bob), None),
        ("patch", "/api/v1/users/{user}", to(bob), Some(json!({"first_name": "Robert"}))),
        ("delete", "/api/v1/users/{user}", to(AdministerUsers), None),
        ("delete", "/api/v1/users/{user}/sessions", to(bob), None),
        ("get", "/api/v1/groups", SignedIn, None),
        (
            "post",
            "/api/v1/groups",
            to(AdministerGroups),
            Some(json!({"identifier": "newgroup", "display_name": "New"})),
        ),
        ("get", "/api/v1/groups/{group}", SignedIn, None),
        ("patch", "/api/v1/groups/{group}", to(AdministerGroups), Some(json!({"display_name": "Renamed"}))),
        ("delete", "/api/v1/groups/{group}", to(AdministerGroups), None),
        // admins, and managers of a workspace the group belongs to (devs belongs to none)
        ("get", "/api/v1/groups/{group}/members", to(ViewGroupMembers), None),
        ("post", "/api/v1/groups/{group}/members", to(AdministerGroups), Some(json!({"user": "ann"}))),
        ("delete", "/api/v1/groups/{group}/members/{user}", to(AdministerGroups), None),
        ("get", "/api/v1/api-keys", to(ManageApiKeys), None),
        (
            "post",
            "/api/v1/api-keys",
            Every(vec![(ManageApiKeys, At::Installation), (CreateInstallationKey, At::Installation)]),
            Some(json!({"name": "k", "role": "admin"})),
        ),
        // ann's key, scoped to ws
        ("delete", "/api/v1/api-keys/{id}", in_ws(RevokeApiKey { creator: Some(named.ann) }), None),
        ("get", "/api/v1/workspaces", SignedIn, None),
        (
            "post",
            "/api/v1/workspaces",
            to(CreateWorkspace),
            Some(json!({"identifier": "fresh", "display_name": "Fresh"})),
        ),
        ("get", ws, in_ws(ViewWorkspace), None),
        ("patch", ws, in_ws(ManageWorkspace), Some(json!({"display_name": "Renamed"}))),
        ("delete", ws, in_ws(OwnWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/members", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/members",
            in_ws(action_to_grant(WorkspaceRole::Member)),
            Some(json!({"email": "someone@example.org", "role": "workspace_member"})),
        ),
        (
            "patch",
            "/api/v1/workspaces/{ws}/members/{subject}",
            in_ws(action_to_grant(WorkspaceRole::Manager)),
            Some(json!({"role": "workspace_manager"})),
        ),
        ("delete", "/api/v1/workspaces/{ws}/members/{subject}", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/search", in_ws(ViewWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/projects", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects",
            in_ws(ManageWorkspace),
            Some(json!({"identifier": "newp", "display_name": "New"})),
        ),
        ("get", p, in_ws(ViewWorkspace), None),
        ("patch", p, in_ws(ManageWorkspace), Some(json!({"display_name": "Renamed"}))),
        ("delete", p, in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/bindings", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/bindings",
            in_ws(ManageWorkspace),
            Some(json!({"user": "mem", "role": "project_admin"})),
        ),
        (
            "patch",
            "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}",
            in_ws(ManageWorkspace),
            Some(json!({"role": "project_reader"})),
        ),
        ("delete", "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/tenants",
            in_ws(ManageWorkspace),
            Some(json!({"platform": "k8s"})),
        ),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", in_ws(ViewWorkspace), None),
        ("delete", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/deletion", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/deletion/confirm",
            in_ws(ManageWorkspace),
            Some(json!({"identifier": "web"})),
        ),
        (
            "post",
            "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/replicate",
            in_ws(ManageWorkspace),
            None,
        ),
        ("get", "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/plan", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/project-roles", SignedIn, None),
        (
            "post",
            "/api/v1/project-roles",
            to(AdministerProjectRoles),
            Some(json!({"identifier": "newrole", "display_name": "New"})),
        ),
        ("patch", "/api/v1/project-roles/{role}", to(AdministerProjectRoles), Some(json!({"display_name": "Renamed"}))),
        ("delete", "/api/v1/project-roles/{role}", to(AdministerProjectRoles), None),
        ("get", "/api/v1/workspaces/{ws}/history", in_ws(ViewHistory), None),
        ("get", "/api/v1/workspaces/{ws}/history/{event}", in_ws(ViewHistory), None),
        ("get", "/api/v1/admin/workspaces", to(AdministerInstallation), None),
        ("get", "/api/v1/admin/history", to(AdministerInstallation), None),
        ("get", "/api/v1/platforms", SignedIn, None),
        (
            "post",
            "/api/v1/platforms",
            to(AdministerPlatforms),
            Some(json!({"identifier": "new", "type": "kubernetes",
            "settings": {"api_url": "https://k"}, "secrets": {"token": "t"}})),
        ),
        ("get", "/api/v1/platforms/{platform}", SignedIn, None),
        (
            "patch",
            "/api/v1/platforms/{platform}",
            to(AdministerPlatforms),
            Some(json!({"landing_zone_required": true})),
        ),
        ("delete", "/api/v1/platforms/{platform}", to(AdministerPlatforms), None),
        ("get", "/api/v1/platforms/{platform}/landing-zones", SignedIn, None),
        (
            "post",
            "/api/v1/platforms/{platform}/landing-zones",
            to(AdministerPlatforms),
            Some(json!({"identifier": "z2", "display_name": "Z"})),
        ),
        ("get", "/api/v1/platforms/{platform}/landing-zones/{zone}", SignedIn, None),
        (
            "patch",
            "/api/v1/platforms/{platform}/landing-zones/{zone}",
            to(AdministerPlatforms),
            Some(json!({"display_name": "Renamed"})),
        ),
        ("delete", "/api/v1/platforms/{platform}/landing-zones/{zone}", to(AdministerPlatforms), None),
        ("get", "/api/v1/platforms/{platform}/deletions", to(AdministerPlatforms), None),
        ("post", "/api/v1/platforms/{platform}/deletions/{id}/confirm", to(AdministerPlatforms), None),
        ("post", "/api/v1/platforms/{platform}/deletions/{id}/decline", to(AdministerPlatforms), None),
        ("get", "/api/v1/admin/history/verify", to(AdministerInstallation), None),
        ("post", "/api/v1/admin/history/verify", to(AdministerInstallation), Some(json!({"checkpoints": []}))),
        ("get", "/api/v1/admin/history/checkpoints", to(AdministerInstallation), None),
        (
            "post",
            "/api/v1/admin/emergency/grant",
            in_ws(GrantEmergencyAccess),
            Some(json!({"user": "bob", "workspace": "ws", "project": "web", "role": "project_admin",
                "expires_at": "2099-01-01T00:00:00Z", "justification": "incident 42"})),
        ),
        (
            "post",
            "/api/v1/admin/emergency/revoke",
            to(AdministerUsers),
            Some(json!({"user": "bob", "justification": "incident 42"})),
        ),
        ("get", "/api/v1/admin/emergency/revocations/{id}", to(AdministerUsers), None),
        ("get", "/api/v1/workspaces/{ws}/expired-access", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/expired-access", to(AdministerInstallation), None),
        ("get", "/api/v1/tag-definitions", SignedIn, None),
        (
            "post",
            "/api/v1/tag-definitions",
            to(AdministerInstallation),
            Some(json!({"key": "cost-centre", "display_name": "Cost centre", "type": "string"})),
        ),
        (
            "patch",
            "/api/v1/tag-definitions/{tag}",
            to(AdministerInstallation),
            Some(json!({"display_name": "Cost center"})),
        ),
        ("delete", "/api/v1/tag-definitions/{tag}", to(AdministerInstallation), None),
        ("get", "/api/v1/workspaces/{ws}/payment-methods", in_ws(ViewWorkspace), None),
        (
            "post",
            "/api/v1/workspaces/{ws}/payment-methods",
            in_ws(ManageWorkspace),
            Some(json!({"name": "Card", "amount": 100.0, "expires_on": "2099-01-31"})),
        ),
        ("patch", "/api/v1/workspaces/{ws}/payment-methods/{id}", in_ws(ManageWorkspace), Some(json!({"amount": 5.0}))),
        ("delete", "/api/v1/workspaces/{ws}/payment-methods/{id}", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/payment-methods/forecast", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/settings", to(AdministerInstallation), None),
        ("patch", "/api/v1/settings", to(AdministerInstallation), Some(json!({"payment_substitutes": true}))),
        ("get", "/api/v1/workspaces/{ws}/requests", in_ws(ManageWorkspace), None),
        ("get", "/api/v1/workspaces/{ws}/requests/{id}", in_ws(ManageWorkspace), None),
        // reaching a request is DecideRequest's (no key filed this one);
        // deciding one that is not one's own is for approvers, people who
        // manage the workspace (four-eye, through authz::approver)
        (
            "post",
            "/api/v1/workspaces/{ws}/requests/{id}/approve",
            Every(vec![
                (ApproveRequest, At::Installation),
                (DecideRequest { filed_with: None }, At::Ws),
                (ManageWorkspace, At::Ws),
            ]),
            None,
        ),
        (
            "post",
            "/api/v1/workspaces/{ws}/requests/{id}/decline",
            Every(vec![(DecideRequest { filed_with: None }, At::Ws), (ManageWorkspace, At::Ws)]),
            None,
        ),
        ("get", "/api/v1/admin/requests", to(AdministerInstallation), None),
        // last: it ends the caller's session
        ("delete", "/api/v1/auth/token", SignedIn, None),
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
    /// The accounts the operations' actions name.
    named: Named,
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
    let named = Named { ann: user_id(app, "ann").await, bob: user_id(app, "bob").await };
    World {
        ann,
        mem,
        out,
        binding: b.body["id"].as_str().unwrap().to_owned(),
        key: k.body["key"]["id"].as_str().unwrap().to_owned(),
        event: h.body["items"][0]["id"].as_str().unwrap().to_owned(),
        named,
    }
}

/// An account's id: the API names people by username only, so it is read
/// from the store.
async fn user_id(app: &TestApp, username: &str) -> Uuid {
    let mut tx = app.store.read().await.unwrap();
    tx.user_by_username(username).await.unwrap().unwrap().id
}

/// The caller as `canopy_domain::authz` sees it, and its effective role in
/// `ws`: who they are from `GET /api/v1/me`, their id from the store.
async fn caller(app: &TestApp, token: &str) -> (Actor, Option<WorkspaceRole>) {
    let me = app.get("/api/v1/me", token).await.expect(200).body;
    assert_eq!(me["kind"], "user", "{me}");
    let name = me["name"].as_str().unwrap().to_owned();
    let installation_roles = me["installation_roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().parse::<InstallationRole>().unwrap())
        .collect();
    let role = me["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["identifier"] == "ws")
        .map(|w| w["role"].as_str().unwrap().parse::<WorkspaceRole>().unwrap());
    let actor = Actor { kind: ActorKind::User, id: user_id(app, &name).await, name, installation_roles };
    (actor, role)
}

/// Whether `authorize` lets the caller do every action the operation needs.
fn allowed(needs: &Needs, (actor, role): &(Actor, Option<WorkspaceRole>), ws: Uuid) -> bool {
    match needs {
        Needs::Public | Needs::SignedIn => true,
        Needs::Every(actions) => actions.iter().all(|(action, at)| {
            let workspace = match at {
                At::Installation => None,
                At::Ws => Some((ws, *role)),
            };
            authorize(actor, *action, workspace).is_ok()
        }),
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
        operations(w.named).iter().map(|(m, p, _, _)| ((*m).to_owned(), (*p).to_owned())).collect();
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
/// where they have it (WS2, AD1, ID3). Who has the right is what
/// `canopy_domain::authz::authorize` answers for the action the operation
/// needs, so the matrix and the rules cannot drift apart.
async fn ws2_every_endpoint_refuses_anonymous_outsiders_and_plain_members(app: TestApp) {
    let w = world(&app).await;
    let _ = &w.ann;
    let ws = app.store.read().await.unwrap().workspace_by_identifier("ws").await.unwrap().unwrap().id;
    let outsider = caller(&app, &w.out).await;
    let member = caller(&app, &w.mem).await;
    // the callers are who the matrix is about
    assert_eq!((outsider.0.name.as_str(), outsider.1), ("out", None));
    assert_eq!((member.0.name.as_str(), member.1), ("mem", Some(WorkspaceRole::Member)));
    assert!(outsider.0.installation_roles.is_empty() && member.0.installation_roles.is_empty());
    // an outsider learns nothing of the workspace's projects (read with the
    // workspace, answered only to those let in): a missing one is refused alike
    for project in ["web", "no-such-project"] {
        let bindings = format!("/api/v1/workspaces/ws/projects/{project}/bindings");
        let r = app.get(&bindings, &w.out).await.expect_problem(403, None);
        assert!(!r.body.to_string().contains(project), "{:#}", r.body);
        app.post(&bindings, &w.out, json!({"user": "out", "role": "project_user"})).await.expect_problem(403, None);
        app.get(&bindings, &w.ann).await.expect(if project == "web" { 200 } else { 404 });
    }
    for (method, path, needs, body) in operations(w.named) {
        let url = fill(path, &w);
        let m = method.to_uppercase();
        let what = format!("{m} {path}");

        let anon = app.request(&m, &url, None, body.clone()).await;
        if needs == Needs::Public {
            assert_ne!(anon.status.as_u16(), 403, "{what}");
            continue;
        }
        assert_eq!(anon.status.as_u16(), 401, "anonymous {what}: {:#}", anon.body);
        assert_eq!(anon.content_type, "application/problem+json");

        for (who, token, as_seen) in [("outsider", &w.out, &outsider), ("plain member", &w.mem, &member)] {
            let r = app.request(&m, &url, Some(token), body.clone()).await;
            if allowed(&needs, as_seen, ws) {
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
