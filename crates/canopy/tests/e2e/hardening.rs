//! SE1–SE8: what a hostile client found (issue 11), each with the test that
//! failed before its fix.

use std::net::IpAddr;
use std::sync::Arc;

use canopy_testkit::{Resp, TestApp};
use serde_json::json;
use time::Duration;

fn addr(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

async fn sign_in_from(app: &TestApp, from: u8, username: &str, password: &str) -> Resp {
    let body = json!({"username": username, "password": password});
    app.request_from(addr(from), "POST", "/api/v1/auth/token", None, Some(body)).await
}

/// The locks recorded in the installation's history: (scope, key).
async fn throttled(app: &TestApp) -> Vec<(String, String)> {
    let h = app.get("/api/v1/admin/history?kind=sign_in_throttled", &app.admin_token).await.expect(200);
    let items = h.body["items"].as_array().unwrap().clone();
    items
        .iter()
        .map(|e| (e["details"]["scope"].as_str().unwrap().to_owned(), e["details"]["key"].as_str().unwrap().to_owned()))
        .collect()
}

/// Finding 2: 40 parallel wrong guesses were all checked; now each attempt is
/// counted before its password is checked, so only the free ones are.
async fn se2_parallel_guesses_are_counted_before_any_is_checked(app: TestApp) {
    app.user("ann").await;
    let app = Arc::new(app);
    let guesses: Vec<_> = (0..40)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { sign_in_from(&app, 2, "ann", "wrong-password-123").await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 5, "only the free attempts are checked: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429 | 503)), "{statuses:?}");
}

/// Finding 2: after 200 failures the right password got 429 for up to 890 s,
/// so anyone could keep `admin` locked out. A guesser at other addresses
/// now slows the account down without keeping its owner out.
async fn se2_a_guesser_elsewhere_does_not_lock_the_owner_out(app: TestApp) {
    app.user("ann").await; // signs in from 127.0.0.1: a known address
    // one guesser: locked out at its own address after five tries
    for _ in 0..5 {
        sign_in_from(&app, 2, "ann", "wrong-password-123").await.expect_problem(401, None);
    }
    let r = sign_in_from(&app, 2, "ann", "wrong-password-123").await.expect_problem(429, None);
    assert_eq!(r.headers.get("retry-after").unwrap(), "30");
    // the owner is not affected
    sign_in_from(&app, 1, "ann", "password-of-ann").await.expect(200);
    // many guessers: the account locks for every address it has not signed in from
    for from in 3..=10 {
        for _ in 0..4 {
            let s = sign_in_from(&app, from, "ann", "wrong-password-123").await.status.as_u16();
            assert!(matches!(s, 401 | 429), "{s}");
        }
    }
    let r = sign_in_from(&app, 99, "ann", "password-of-ann").await.expect_problem(429, None);
    let wait: i64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&wait), "{wait}");
    // the account-wide lock is in the installation's history, once (HI1)
    let locks = throttled(&app).await;
    assert_eq!(locks, vec![("account".to_owned(), "ann".to_owned())], "{locks:?}");
    // the owner at their known address signs in, which lifts the account-wide lock
    sign_in_from(&app, 1, "ann", "password-of-ann").await.expect(200);
    sign_in_from(&app, 99, "ann", "password-of-ann").await.expect(200);
    // and a lock never outlasts the window by much: after it, the guesser's address is free again
    app.clock.advance(Duration::minutes(16));
    sign_in_from(&app, 2, "ann", "password-of-ann").await.expect(200);
}

/// Review of finding 2: behind a shared address (an office's NAT, a proxy
/// not named with --trusted-proxy) one person spraying names locked everyone
/// out; and every refused attempt was a database write.
async fn se2_a_sprayed_shared_address_does_not_lock_out_its_known_users(app: TestApp) {
    app.user("ann").await;
    sign_in_from(&app, 40, "ann", "password-of-ann").await.expect(200); // ann's office
    for i in 0..50 {
        let s = sign_in_from(&app, 40, &format!("guess{i}"), "wrong-password-123").await.status.as_u16();
        assert_eq!(s, 401);
    }
    sign_in_from(&app, 40, "nobody-new", "wrong-password-123").await.expect_problem(429, None);
    // the address's lock is in the installation's history (HI1)
    assert_eq!(throttled(&app).await, vec![("address".to_owned(), "127.0.0.40".to_owned())]);
    // locked out, the sprayer costs no write: no counter is made for new names
    let rows = || app.sql_strings("SELECT CAST(COUNT(*) AS TEXT) FROM sign_in_counters");
    let before = rows().await;
    for i in 0..10 {
        sign_in_from(&app, 40, &format!("more{i}"), "wrong-password-123").await.expect_problem(429, None);
    }
    assert_eq!(rows().await, before);
    // ann, known at this address, still signs in; a newcomer there waits
    sign_in_from(&app, 40, "ann", "password-of-ann").await.expect(200);
    app.user("bob").await;
    sign_in_from(&app, 40, "bob", "password-of-bob").await.expect_problem(429, None);
}

/// Finding 2: an existing account answered 429 where an unknown name
/// answered 401, which told names apart. Both are now counted alike.
async fn se1_known_and_unknown_names_are_answered_alike(app: TestApp) {
    app.user("ann").await;
    let mut seen = Vec::new();
    for (from, name) in [(20, "ann"), (21, "nobody")] {
        let mut answers = Vec::new();
        for _ in 0..8 {
            let r = sign_in_from(&app, from, name, "wrong-password-123").await;
            let retry = r.headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            answers.push((r.status.as_u16(), r.body["detail"].clone(), retry));
        }
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1], "the answers for an existing and an unknown name differ");
    assert_eq!(seen[0][5].0, 429);
}

/// Finding 8: `canopy logout` only forgot the token; sessions lasted 12 h.
async fn se6_sign_out_ends_sessions_on_the_server(app: TestApp) {
    let admin = app.admin_token.clone();
    let ann = app.user("ann").await;
    let ann2 = app.sign_in("ann", "password-of-ann").await;
    app.request("DELETE", "/api/v1/auth/token", Some(&ann), None).await.expect(204);
    app.get("/api/v1/me", &ann).await.expect_problem(401, None);
    app.get("/api/v1/me", &ann2).await.expect(200);
    app.request("DELETE", "/api/v1/auth/token", None, None).await.expect_problem(401, None);
    // an API key is not a session
    app.workspace(&admin, "w").await;
    let k = app.post("/api/v1/api-keys", &admin, json!({"name": "ci", "workspace": "w", "role": "workspace_member"}));
    let key = k.await.expect(201).body["secret"].as_str().unwrap().to_owned();
    app.request("DELETE", "/api/v1/auth/token", Some(&key), None).await.expect_problem(400, None);
    app.get("/api/v1/me", &key).await.expect(200);
    // sign out everywhere: oneself, or an admin for someone else (recorded)
    let ann3 = app.sign_in("ann", "password-of-ann").await;
    let r = app.request("DELETE", "/api/v1/users/ann/sessions", Some(&ann3), None).await.expect(200);
    assert_eq!(r.body["sessions_ended"], 2);
    app.get("/api/v1/me", &ann2).await.expect_problem(401, None);
    app.get("/api/v1/me", &ann3).await.expect_problem(401, None);
    let bob = app.user("bob").await;
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.request("DELETE", "/api/v1/users/bob/sessions", Some(&ann), None).await.expect_problem(403, None);
    app.request("DELETE", "/api/v1/users/bob/sessions", Some(&admin), None).await.expect(200);
    app.get("/api/v1/me", &bob).await.expect_problem(401, None);
    let h = app.get("/api/v1/admin/history?kind=sessions_ended", &admin).await.expect(200).body;
    let last = &h["items"][0];
    assert_eq!((last["initiator"]["name"].as_str(), last["details"]["user"].as_str()), (Some("admin"), Some("bob")));
    // deactivation ends them too
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.patch("/api/v1/users/ann", &admin, json!({"active": false})).await.expect(200);
    app.get("/api/v1/me", &ann).await.expect_problem(401, None);
}

/// Finding 9: a session token alone changed its user's password.
async fn se6_a_password_change_needs_the_current_password(app: TestApp) {
    let admin = app.admin_token.clone();
    let ann = app.user("ann").await;
    let new = "a-new-password-for-ann";
    let r = app.patch("/api/v1/users/ann", &ann, json!({"password": new})).await;
    r.expect_problem(422, Some("current_password"));
    let wrong = json!({"password": new, "current_password": "not-the-password"});
    app.patch("/api/v1/users/ann", &ann, wrong.clone()).await.expect_problem(422, Some("current_password"));
    app.get("/api/v1/me", &ann).await.expect(200);
    // guessing it is throttled like signing in
    for _ in 0..4 {
        app.patch("/api/v1/users/ann", &ann, wrong.clone()).await.expect_problem(422, Some("current_password"));
    }
    app.patch("/api/v1/users/ann", &ann, wrong).await.expect_problem(429, None);
    app.clock.advance(Duration::minutes(16));
    let right = json!({"password": new, "current_password": "password-of-ann"});
    app.patch("/api/v1/users/ann", &ann, right).await.expect(200);
    app.get("/api/v1/me", &ann).await.expect_problem(401, None);
    app.sign_in("ann", new).await;
    // an admin resets another's password without it, and the history says who
    app.patch("/api/v1/users/ann", &admin, json!({"password": "reset-by-the-admin"})).await.expect(200);
    app.sign_in("ann", "reset-by-the-admin").await;
    let h = app.get("/api/v1/admin/history?kind=user_updated", &admin).await.expect(200).body;
    let last = &h["items"][0];
    assert_eq!(last["initiator"]["name"], "admin");
    assert_eq!(last["details"]["password_changed"], true);
    // but an admin changing their own gives the current one too
    let r = app.patch("/api/v1/users/admin", &admin, json!({"password": "another-admin-password"})).await;
    r.expect_problem(422, Some("current_password"));
}

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
    // (names only: anyone may make a workspace and invite the group, so addresses are for admins)
    let shown = app.get(members, &olga).await.expect(200).body;
    assert_eq!((shown["items"][0]["username"].as_str(), &shown["items"][0]["email"]), (Some("ann"), &json!(null)));
    app.get(members, &ann).await.expect_problem(403, None);
    app.get(members, &out).await.expect_problem(403, None);
    // the list of groups stays open to everyone signed in (type-ahead)
    app.get("/api/v1/groups", &out).await.expect(200);
}

/// Finding 4: a platform engineer changed `auth_url` keeping the stored
/// secrets, and the next replication sent Keystone's admin password to a
/// listener of their choosing.
async fn se4_a_platforms_secrets_go_to_a_new_address_only_given_again(app: TestApp) {
    let admin = app.admin_token.clone();
    app.post(
        "/api/v1/users",
        &admin,
        json!({"username": "pat", "email": "pat@example.org", "first_name": "Pat", "last_name": "Lee",
            "password": "password-of-pat", "installation_roles": ["platform_engineer"]}),
    )
    .await
    .expect(201);
    let pat = app.sign_in("pat", "password-of-pat").await;
    let platform = json!({"identifier": "os", "type": "openstack",
        "settings": {"auth_url": "https://keystone.example/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "the-keystone-password"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &admin, platform).await.expect(201);
    let elsewhere = json!({"auth_url": "https://listener.example/v3", "domain": "Default"});
    // the stored secrets do not follow a new address
    let r = app.patch("/api/v1/platforms/os", &pat, json!({"settings": elsewhere})).await;
    let r = r.expect_problem(422, Some("secrets"));
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("auth_url"), "{}", r.body);
    let half = json!({"settings": elsewhere, "secrets": {"password": "x"}});
    app.patch("/api/v1/platforms/os", &pat, half).await.expect_problem(422, Some("secrets"));
    let shown = app.get("/api/v1/platforms/os", &pat).await.expect(200).body;
    assert_eq!(shown["settings"]["auth_url"], "https://keystone.example/v3", "nothing changed");
    // other settings change freely
    let renamed = json!({"auth_url": "https://keystone.example/v3", "domain": "Other"});
    app.patch("/api/v1/platforms/os", &pat, json!({"settings": renamed})).await.expect(200);
    // with the secrets given again, the address may change; an admin may change it alone
    let given = json!({"settings": elsewhere, "secrets": {"username": "svc", "password": "a-new-secret"}});
    app.patch("/api/v1/platforms/os", &pat, given).await.expect(200);
    let back = json!({"auth_url": "https://keystone.example/v3", "domain": "Default"});
    app.patch("/api/v1/platforms/os", &admin, json!({"settings": back})).await.expect(200);
    // each move is in the history, the secrets never
    let h = app.get("/api/v1/admin/history?kind=platform_updated", &admin).await.expect(200).body;
    let moves: Vec<_> =
        h["items"].as_array().unwrap().iter().map(|e| e["details"]["destination_changed"].clone()).collect();
    assert_eq!(moves, [json!(["auth_url"]), json!(["auth_url"]), json!([])], "{h}");
    assert!(!h.to_string().contains("a-new-secret") && !h.to_string().contains("the-keystone-password"));
}

/// Four-eye on with one approval; workspace `w` owned by olga with managers
/// mia and max, member ann, and project `web`.
async fn four_eye_world(app: &TestApp) -> (String, String, String) {
    let admin = app.admin_token.clone();
    app.patch("/api/v1/settings", &admin, json!({"four_eye": {"enabled": true, "approvals": 1}})).await.expect(200);
    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    let max = app.user("max").await;
    app.user("ann").await;
    app.workspace(&olga, "w").await;
    app.project(&olga, "w", "web").await;
    app.invite(&olga, "w", "mia", "workspace_manager").await;
    app.invite(&olga, "w", "max", "workspace_manager").await;
    app.invite(&olga, "w", "ann", "workspace_member").await;
    (olga, mia, max)
}

const BINDINGS: &str = "/api/v1/workspaces/w/projects/web/bindings";

async fn ask(app: &TestApp, token: &str, user: &str) -> String {
    let body = json!({"user": user, "role": "project_user", "justification": "needed"});
    app.post(BINDINGS, token, body).await.expect(202).body["id"].as_str().unwrap().to_owned()
}

async fn request(app: &TestApp, id: &str) -> serde_json::Value {
    app.get(&format!("/api/v1/workspaces/w/requests/{id}"), &app.admin_token).await.expect(200).body
}

fn approve_path(id: &str) -> String {
    format!("/api/v1/workspaces/w/requests/{id}/approve")
}

/// Finding 13: a manager filed an add, was then demoted (or removed, or the
/// API key that filed it was deleted); another manager approved and AWS
/// granted the role. Finding 12: a key could not withdraw its own request.
async fn fe4_a_request_is_void_once_its_requester_may_no_longer_ask(app: TestApp) {
    let (olga, mia, max) = four_eye_world(&app).await;
    let demote = |role: &'static str| json!({"role": role});
    // demoted
    let id = ask(&app, &mia, "ann").await;
    app.patch("/api/v1/workspaces/w/members/user:mia", &olga, demote("workspace_member")).await.expect(200);
    let q = app.post(&approve_path(&id), &max, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "void", "{q}");
    assert!(q["reason"].as_str().unwrap().contains("no longer make this change"), "{q}");
    assert_eq!(app.get(BINDINGS, &olga).await.expect(200).body["items"], json!([]));
    // removed from the workspace
    app.patch("/api/v1/workspaces/w/members/user:mia", &olga, demote("workspace_manager")).await.expect(200);
    let id = ask(&app, &mia, "ann").await;
    app.delete("/api/v1/workspaces/w/members/user:mia", &olga).await.expect(204);
    assert_eq!(app.post(&approve_path(&id), &max, json!({})).await.expect(200).body["state"], "void");
    // the API key that filed it deleted
    app.invite(&olga, "w", "mia", "workspace_manager").await;
    let key = json!({"name": "ci", "workspace": "w", "role": "workspace_manager"});
    let k = app.post("/api/v1/api-keys", &mia, key).await.expect(201).body;
    let (secret, key_id) = (k["secret"].as_str().unwrap().to_owned(), k["key"]["id"].as_str().unwrap().to_owned());
    let id = ask(&app, &secret, "ann").await;
    app.delete(&format!("/api/v1/api-keys/{key_id}"), &mia).await.expect(204);
    assert_eq!(app.post(&approve_path(&id), &max, json!({})).await.expect(200).body["state"], "void");
    // a key withdraws what it filed, as documented
    let key = json!({"name": "ci2", "workspace": "w", "role": "workspace_manager"});
    let secret = app.post("/api/v1/api-keys", &mia, key).await.expect(201).body["secret"].as_str().unwrap().to_owned();
    let id = ask(&app, &secret, "ann").await;
    let decline = format!("/api/v1/workspaces/w/requests/{id}/decline");
    assert_eq!(app.post(&decline, &secret, json!({})).await.expect(200).body["state"], "declined");
    let h = app.get("/api/v1/workspaces/w/history?kind=role_request_declined", &olga).await.expect(200).body;
    assert_eq!(h["items"][0]["details"]["withdrawn"], true, "{h}");
    // an installation key too (it holds no workspace role)
    let admin_key = json!({"name": "ops-bot", "role": "admin"});
    let admin_key = app.post("/api/v1/api-keys", &app.admin_token, admin_key).await.expect(201).body;
    let admin_key = admin_key["secret"].as_str().unwrap().to_owned();
    let id = ask(&app, &admin_key, "ann").await;
    let decline = format!("/api/v1/workspaces/w/requests/{id}/decline");
    assert_eq!(app.post(&decline, &admin_key, json!({})).await.expect(200).body["state"], "declined");
    // while a request whose requester still may ask applies
    let id = ask(&app, &mia, "ann").await;
    assert_eq!(app.post(&approve_path(&id), &max, json!({})).await.expect(200).body["state"], "approved");
}

/// Findings 14 and 15: an emergency revocation left the person's pending
/// requests open and their API keys in place; after reactivation both
/// worked again.
async fn ad4_emergency_revocation_voids_requests_and_deletes_keys(app: TestApp) {
    let admin = app.admin_token.clone();
    let (olga, mia, max) = four_eye_world(&app).await;
    let filed = ask(&app, &mia, "ann").await;
    let for_mia = ask(&app, &olga, "mia").await;
    let other = ask(&app, &olga, "max").await;
    let key = json!({"name": "mias-key", "workspace": "w", "role": "workspace_manager"});
    let secret = app.post("/api/v1/api-keys", &mia, key).await.expect(201).body["secret"].as_str().unwrap().to_owned();
    let r = app.post("/api/v1/admin/emergency/revoke", &admin, json!({"user": "mia", "justification": "compromised"}));
    let receipt = r.await.expect(201).body;
    let mut voided: Vec<&str> =
        receipt["requests"].as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap()).collect();
    voided.sort();
    let mut want = vec![filed.as_str(), for_mia.as_str()];
    want.sort();
    assert_eq!(voided, want, "{receipt}");
    assert_eq!(receipt["api_keys"][0]["name"], "mias-key", "{receipt}");
    for id in [&filed, &for_mia] {
        assert_eq!(request(&app, id).await["state"], "void");
    }
    // reactivated and invited again: nothing comes back
    app.patch("/api/v1/users/mia", &admin, json!({"active": true})).await.expect(200);
    app.invite(&olga, "w", "mia", "workspace_manager").await;
    app.post(&approve_path(&for_mia), &max, json!({})).await.expect_problem(409, None);
    app.get("/api/v1/me", &secret).await.expect_problem(401, None);
    let path = format!("/api/v1/admin/emergency/revocations/{}", receipt["id"].as_str().unwrap());
    assert_eq!(app.get(&path, &admin).await.expect(200).body["requests"].as_array().unwrap().len(), 2);
    // the request that did not touch mia stays pending
    assert_eq!(request(&app, &other).await["state"], "pending");
}

/// Finding 16: a change shortening a binding to end in 6 s was approved 10 s
/// later and voided, leaving the binding with no expiration and the role.
async fn fe1_an_approved_reduction_whose_moment_passed_ends_the_binding(app: TestApp) {
    let admin = app.admin_token.clone();
    let (olga, _mia, max) = four_eye_world(&app).await;
    app.patch("/api/v1/settings", &admin, json!({"four_eye": {"enabled": false, "approvals": 1}})).await.expect(200);
    let b = app.post(BINDINGS, &olga, json!({"user": "ann", "role": "project_user"})).await.expect(201).body;
    let binding = format!("{BINDINGS}/{}", b["id"].as_str().unwrap());
    app.patch("/api/v1/settings", &admin, json!({"four_eye": {"enabled": true, "approvals": 1}})).await.expect(200);
    use canopy_domain::clock::Clock;
    let soon = (app.clock.now() + Duration::seconds(6)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let change = json!({"expires_at": soon, "justification": "ann leaves the team"});
    let q = app.patch(&binding, &olga, change).await.expect(202).body;
    app.clock.advance(Duration::seconds(10));
    let q = app.post(&approve_path(q["id"].as_str().unwrap()), &max, json!({})).await.expect(200).body;
    assert_eq!(q["state"], "approved", "{q}");
    let list = app.get(BINDINGS, &olga).await.expect(200).body;
    let b = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| binding.ends_with(i["id"].as_str().unwrap()))
        .unwrap()
        .clone();
    assert_eq!((b["in_force"].as_bool(), b["role"].as_str()), (Some(false), Some("project_user")), "{b}");
    assert_eq!(b["expires_at"].as_str(), Some(soon.as_str()));
    // the expiry job ends it like any expired binding
    assert_eq!(canopy_engine::expiry::end_due(&app.store, app.clock.as_ref()).await.unwrap(), 1);
}

/// Finding 17: deleting the user or group of a pending request left no
/// closing event, and the request answered 404.
async fn fe1_a_pending_request_closes_when_its_subject_is_deleted(app: TestApp) {
    let admin = app.admin_token.clone();
    let (olga, mia, _max) = four_eye_world(&app).await;
    let id = ask(&app, &mia, "ann").await;
    app.delete("/api/v1/users/ann", &admin).await.expect(204);
    let q = request(&app, &id).await;
    assert_eq!((q["state"].as_str(), q["subject"].as_str()), (Some("void"), Some("user:ann")), "{q}");
    assert!(q["reason"].as_str().unwrap().contains("deleted"), "{q}");
    app.post("/api/v1/groups", &admin, json!({"identifier": "ops", "display_name": "Ops"})).await.expect(201);
    app.post("/api/v1/workspaces/w/members", &olga, json!({"group": "ops", "role": "workspace_member"}))
        .await
        .expect(201);
    let body = json!({"group": "ops", "role": "project_user", "justification": "ops"});
    let gid = app.post(BINDINGS, &mia, body).await.expect(202).body["id"].as_str().unwrap().to_owned();
    app.delete("/api/v1/groups/ops", &admin).await.expect(204);
    let q = request(&app, &gid).await;
    assert_eq!((q["state"].as_str(), q["subject"].as_str()), (Some("void"), Some("group:ops")), "{q}");
    let h = app.get("/api/v1/workspaces/w/history?kind=role_request_void", &olga).await.expect(200).body;
    let closed: Vec<&str> =
        h["items"].as_array().unwrap().iter().map(|e| e["details"]["request"].as_str().unwrap()).collect();
    assert!(closed.contains(&id.as_str()) && closed.contains(&gid.as_str()), "{h}");
}

/// Finding 12: a malformed path segment answered text/plain.
async fn se5_every_rejection_is_problem_details(app: TestApp) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    for path in
        ["/api/v1/admin/emergency/revocations/%ff", "/api/v1/workspaces/%ff/expired-access", "/api/v1/users/%ff"]
    {
        let r = app.get(path, &admin).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        assert_eq!(r.content_type, "application/problem+json", "{path}");
    }
}

/// Finding 12: a workspace API key made an emergency grant that bypassed
/// four-eye. Automation breaks glass only with an installation admin key.
async fn ad3_a_workspace_key_cannot_break_glass(app: TestApp) {
    let admin = app.admin_token.clone();
    let (olga, _mia, _max) = four_eye_world(&app).await;
    let key = json!({"name": "ci", "workspace": "w", "role": "workspace_manager"});
    let ws_key = app.post("/api/v1/api-keys", &olga, key).await.expect(201).body["secret"].as_str().unwrap().to_owned();
    use canopy_domain::clock::Clock;
    let until = (app.clock.now() + Duration::hours(4)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let grant = json!({"user": "ann", "workspace": "w", "project": "web", "role": "project_admin",
        "expires_at": until, "justification": "incident 42"});
    let r = app.post("/api/v1/admin/emergency/grant", &ws_key, grant.clone()).await.expect_problem(403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("workspace key"), "{}", r.body);
    assert_eq!(app.get(BINDINGS, &olga).await.expect(200).body["items"], json!([]));
    let key = json!({"name": "break-glass", "role": "admin"});
    let admin_key =
        app.post("/api/v1/api-keys", &admin, key).await.expect(201).body["secret"].as_str().unwrap().to_owned();
    app.post("/api/v1/admin/emergency/grant", &admin_key, grant).await.expect(201);
}

/// Finding 18: a confirmed manual deletion revokes in the tenant first; where
/// the platform cannot be reached, the receipt says so (and the deletion,
/// which the engineer vouches for, still goes through).
async fn dl3_a_manual_deletion_says_when_access_could_not_be_revoked(app: TestApp) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    app.project(&admin, "w", "web").await;
    let platform = json!({"identifier": "gone", "type": "openstack", "deletion": "manual",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "unused"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &admin, platform).await.expect(201);
    let p = "/api/v1/workspaces/w/projects/web";
    app.post(&format!("{p}/tenants"), &admin, json!({"platform": "gone"})).await.expect(201);
    app.sql("UPDATE tenants SET external_id = 'ext-1'").await;
    app.delete(&format!("{p}/tenants/gone"), &admin).await.expect(202);
    app.post(&format!("{p}/deletion/confirm"), &admin, json!({"identifier": "web"})).await.expect(200);
    let pending = app.get("/api/v1/platforms/gone/deletions", &admin).await.expect(200).body;
    let id = pending["items"][0]["id"].as_str().unwrap().to_owned();
    let confirm = format!("/api/v1/platforms/gone/deletions/{id}/confirm");
    // a replication run holds the tenant: the confirmation waits rather than
    // revoking while the run may grant (review of finding 18)
    use canopy_domain::clock::Clock;
    let now = app.clock.now();
    let tenant = uuid::Uuid::parse_str(&id).unwrap();
    let run = app.store.hold_tenant(tenant, "a-run", now, now + Duration::minutes(2)).await.unwrap().unwrap();
    app.post(&confirm, &admin, json!({})).await.expect_problem(409, None);
    app.store.release_tenant(&run).await.unwrap();
    let receipt = app.post(&confirm, &admin, json!({})).await.expect(200).body;
    assert!(receipt["platform_error"].as_str().is_some_and(|e| !e.is_empty()), "{receipt}");
    assert_eq!(
        (receipt["external_id"].as_str(), receipt["revoked"].as_array().map(Vec::len)),
        (Some("ext-1"), Some(0))
    );
    app.get(&format!("{p}/tenants/gone"), &admin).await.expect_problem(404, None);
    let h = app.get("/api/v1/workspaces/w/history?kind=tenant_deleted", &admin).await.expect(200).body;
    assert!(h["items"][0]["details"]["platform_error"].is_string(), "{h}");
    // a second confirmation finds nothing waiting
    app.post(&confirm, &admin, json!({})).await.expect_problem(404, None);
}

canopy_testkit::backend_tests! {
    se2_a_sprayed_shared_address_does_not_lock_out_its_known_users,
    dl3_a_manual_deletion_says_when_access_could_not_be_revoked,
    ad3_a_workspace_key_cannot_break_glass,
    se5_every_rejection_is_problem_details,
    fe4_a_request_is_void_once_its_requester_may_no_longer_ask,
    ad4_emergency_revocation_voids_requests_and_deletes_keys,
    fe1_an_approved_reduction_whose_moment_passed_ends_the_binding,
    fe1_a_pending_request_closes_when_its_subject_is_deleted,
    se4_a_platforms_secrets_go_to_a_new_address_only_given_again,
    se2_parallel_guesses_are_counted_before_any_is_checked,
    se2_a_guesser_elsewhere_does_not_lock_the_owner_out,
    se1_known_and_unknown_names_are_answered_alike,
    se6_sign_out_ends_sessions_on_the_server,
    se6_a_password_change_needs_the_current_password,
    se3_nobody_approves_a_change_to_their_own_access_through_a_group,
    se5_overlong_query_parameters_are_refused_naming_the_parameter,
    ws2_group_members_are_shown_only_to_admins_and_managers_of_its_workspaces,
}
