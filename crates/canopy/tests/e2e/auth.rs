//! ID1, ID3 and credentials: local sign-in, sessions, API keys, throttling.

use canopy_testkit::TestApp;
use serde_json::json;
use time::Duration;

async fn token(app: &TestApp, username: &str, password: &str) -> canopy_testkit::Resp {
    app.request("POST", "/api/v1/auth/token", None, Some(json!({"username": username, "password": password}))).await
}

async fn id1_local_account_signs_in_and_passwords_are_stored_hashed(app: TestApp) {
    let ann = app.user("ann").await;
    let me = app.get("/api/v1/me", &ann).await.expect(200);
    assert_eq!(me.body["user"]["username"], "ann");
    assert_eq!(me.body["kind"], "user");
    let hashes = app.sql_strings("SELECT password_hash FROM users WHERE username = 'ann'").await;
    assert!(hashes[0].starts_with("$argon2id$"), "argon2id: {}", hashes[0]);
    assert!(!hashes[0].contains("password-of-ann"));
    // sessions are stored as hashes of the token, never the token
    let stored = app.sql_strings("SELECT token_hash FROM sessions").await;
    assert!(!stored.contains(&ann));
    assert!(stored.iter().all(|h| h.len() == 64));
    // wrong password and unknown user look alike
    let a = token(&app, "ann", "wrong-password-123").await.expect_problem(401, None);
    let b = token(&app, "nobody", "wrong-password-123").await.expect_problem(401, None);
    assert_eq!(a.body["detail"], b.body["detail"]);
    // a user changes their own password, giving the current one; old sessions end
    let change = json!({"password": "a-new-password-for-ann", "current_password": "password-of-ann"});
    app.patch("/api/v1/users/ann", &ann, change).await.expect(200);
    app.get("/api/v1/me", &ann).await.expect_problem(401, None);
    token(&app, "ann", "password-of-ann").await.expect_problem(401, None);
    token(&app, "ann", "a-new-password-for-ann").await.expect(200);
    // but not their e-mail or roles
    let ann = app.sign_in("ann", "a-new-password-for-ann").await;
    app.patch("/api/v1/users/ann", &ann, json!({"installation_roles": ["admin"]})).await.expect_problem(403, None);
    app.patch("/api/v1/users/ann", &ann, json!({"password": "short"})).await.expect_problem(422, Some("password"));
}

async fn id1_sessions_expire_with_the_clock(app: TestApp) {
    let ann = app.user("ann").await;
    app.clock.advance(Duration::hours(11));
    app.get("/api/v1/me", &ann).await.expect(200);
    app.clock.advance(Duration::hours(2));
    let r = app.get("/api/v1/me", &ann).await.expect_problem(401, None);
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    app.request("GET", "/api/v1/me", None, None).await.expect_problem(401, None);
    app.request("GET", "/api/v1/me", Some("cnp_s_forged"), None).await.expect_problem(401, None);
}

async fn id1_repeated_failed_sign_ins_are_throttled(app: TestApp) {
    app.user("ann").await;
    for _ in 0..5 {
        token(&app, "ann", "wrong-password-123").await.expect_problem(401, None);
    }
    // locked: even the right password is refused for now
    let r = token(&app, "ann", "password-of-ann").await.expect_problem(429, None);
    assert_eq!(r.headers.get("retry-after").unwrap(), "30");
    app.clock.advance(Duration::seconds(31));
    token(&app, "ann", "password-of-ann").await.expect(200);
    // success resets the count
    for _ in 0..4 {
        token(&app, "ann", "wrong-password-123").await.expect_problem(401, None);
    }
    token(&app, "ann", "password-of-ann").await.expect(200);
    // other accounts are not affected
    app.user("bob").await;
    // guesses sent in parallel all count
    let app = std::sync::Arc::new(app);
    let guesses: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { token(&app, "bob", "wrong-password-123").await.status.as_u16() })
        })
        .collect();
    for g in guesses {
        assert!(matches!(g.await.unwrap(), 401 | 429));
    }
    token(&app, "bob", "password-of-bob").await.expect_problem(429, None);
}

async fn id1_admin_manages_users(app: TestApp) {
    let admin = app.admin_token.clone();
    let r = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "pat", "email": "pat@example.org", "first_name": "Pat", "last_name": "Lee",
        "password": "password-of-pat", "installation_roles": ["platform_engineer"]}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["installation_roles"], json!(["platform_engineer"]));
    app.post("/api/v1/users", &admin, json!({"username": "pat", "email": "other@example.org"}))
        .await
        .expect_problem(409, Some("username"));
    app.post("/api/v1/users", &admin, json!({"username": "pat2", "email": "PAT@example.org"}))
        .await
        .expect_problem(409, Some("email"));
    let r = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "Bad Name", "email": "nope", "password": "short", "installation_roles": ["king"]}),
        )
        .await
        .expect_problem(422, None);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["email", "installation_roles", "password", "username"]);
    let r = app.get("/api/v1/users?q=lee", &admin).await.expect(200);
    assert_eq!(r.body["items"][0]["username"], "pat");
    app.patch("/api/v1/users/pat", &admin, json!({"first_name": "Patricia"})).await.expect(200);
    let pat = app.sign_in("pat", "password-of-pat").await;
    app.get("/api/v1/users/pat", &pat).await.expect(200);
    app.get("/api/v1/users/admin", &pat).await.expect_problem(403, None);
    app.get("/api/v1/users", &pat).await.expect_problem(403, None);
    app.patch("/api/v1/users/admin", &admin, json!({"active": false})).await.expect_problem(422, Some("active"));
    app.delete("/api/v1/users/admin", &admin).await.expect_problem(422, Some("user"));
    app.delete("/api/v1/users/pat", &admin).await.expect(204);
    app.get("/api/v1/me", &pat).await.expect_problem(401, None);
    app.get("/api/v1/users/pat", &admin).await.expect_problem(404, None);
}

async fn id3_workspace_api_key_acts_only_in_its_workspace(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    app.workspace(&ann, "other").await;
    let r = app
        .post(
            "/api/v1/api-keys",
            &ann,
            json!({"name": "ci", "workspace": "ws", "role": "workspace_manager", "expires_at": "2026-11-30T00:00:00Z"}),
        )
        .await
        .expect(201);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let id = r.body["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["key"]["scope"], "workspace");
    // stored hashed; listed without the secret
    assert!(!app.sql_strings("SELECT token_hash FROM api_keys").await.contains(&secret));
    let list = app.get("/api/v1/api-keys", &ann).await.expect(200);
    assert!(!list.body.to_string().contains(&secret));
    assert_eq!(list.body["items"][0]["name"], "ci");

    app.post("/api/v1/workspaces/ws/projects", &secret, json!({"identifier": "web", "display_name": "Web"}))
        .await
        .expect(201);
    let me = app.get("/api/v1/me", &secret).await.expect(200);
    assert_eq!(me.body["kind"], "api_key");
    app.get("/api/v1/workspaces/other", &secret).await.expect_problem(403, None);
    app.post("/api/v1/workspaces", &secret, json!({"identifier": "x", "display_name": "X"}))
        .await
        .expect_problem(403, None);
    app.post("/api/v1/api-keys", &secret, json!({"name": "k2", "workspace": "ws", "role": "workspace_member"}))
        .await
        .expect_problem(403, None);
    // owner role is never given to keys; installation keys are for admins
    app.post("/api/v1/api-keys", &ann, json!({"name": "k", "workspace": "ws", "role": "workspace_owner"}))
        .await
        .expect_problem(422, Some("role"));
    app.post("/api/v1/api-keys", &ann, json!({"name": "k", "role": "admin"})).await.expect_problem(403, None);
    app.post("/api/v1/api-keys", &ann, json!({"name": "k", "workspace": "nope", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("workspace"));
    // keys expire with the clock, and deletion ends them at once
    app.clock.advance(Duration::days(8));
    app.get("/api/v1/workspaces/ws", &secret).await.expect_problem(401, None);
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.delete(&format!("/api/v1/api-keys/{id}"), &ann).await.expect(204);
    app.delete(&format!("/api/v1/api-keys/{id}"), &ann).await.expect_problem(404, None);
}

async fn id3_installation_api_key_for_automation(app: TestApp) {
    let r = app
        .post("/api/v1/api-keys", &app.admin_token, json!({"name": "provisioner", "role": "admin"}))
        .await
        .expect(201);
    assert_eq!(r.body["key"]["scope"], "installation");
    let key = r.body["secret"].as_str().unwrap().to_owned();
    app.post("/api/v1/users", &key, json!({"username": "svc", "email": "svc@example.org"})).await.expect(201);
    app.post("/api/v1/workspaces", &key, json!({"identifier": "auto", "display_name": "Automated"})).await.expect(201);
    let h = app.get("/api/v1/workspaces/auto/history", &key).await.expect(200);
    assert_eq!(h.body["items"][0]["initiator"], json!({"kind": "api_key", "name": "provisioner"}));
    let r = app
        .post("/api/v1/api-keys", &app.admin_token, json!({"name": "pe", "role": "platform_engineer"}))
        .await
        .expect(201);
    let pe = r.body["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/users", &pe).await.expect_problem(403, None);
}

async fn id2_admins_manage_groups_and_deleting_one_ends_its_access(app: TestApp) {
    let admin = app.admin_token.clone();
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.post("/api/v1/groups", &ann, json!({"identifier": "devs", "display_name": "Devs"}))
        .await
        .expect_problem(403, None);
    let r = app
        .post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Developers"}))
        .await
        .expect(201);
    assert_eq!(r.body["member_count"], 0);
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Again"}))
        .await
        .expect_problem(409, Some("identifier"));
    app.post("/api/v1/groups", &admin, json!({"identifier": "Dev Team", "display_name": ""}))
        .await
        .expect_problem(422, None);
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "bob"})).await.expect(201);
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "bob"})).await.expect_problem(409, Some("user"));
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "ghost"})).await.expect_problem(422, Some("user"));
    app.post("/api/v1/groups/devs/members", &ann, json!({"user": "ann"})).await.expect_problem(403, None);
    let r = app.patch("/api/v1/groups/devs", &admin, json!({"display_name": "Developers EU"})).await.expect(200);
    assert_eq!((r.body["display_name"].as_str(), r.body["member_count"].as_i64()), (Some("Developers EU"), Some(1)));
    // everyone signed in can read groups, to invite and bind them; their
    // members only admins and the managers of a workspace they belong to
    app.get("/api/v1/groups/devs", &ann).await.expect(200);
    app.get("/api/v1/groups/devs/members", &ann).await.expect_problem(403, None);

    // a group's workspace role and bindings end with it
    app.workspace(&ann, "ws").await;
    app.project(&ann, "ws", "web").await;
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    let r = app.get("/api/v1/groups/devs/members", &ann).await.expect(200);
    assert_eq!(r.body["items"][0]["username"], "bob");
    app.post("/api/v1/workspaces/ws/projects/web/bindings", &ann, json!({"group": "devs", "role": "project_user"}))
        .await
        .expect(201);
    assert_eq!(app.get("/api/v1/me", &bob).await.body["projects"][0]["project"], "web");
    app.delete("/api/v1/groups/devs", &admin).await.expect(204);
    assert_eq!(app.get("/api/v1/me", &bob).await.body["projects"], json!([]));
    app.get("/api/v1/workspaces/ws", &bob).await.expect_problem(403, None);
    let h = app.get("/api/v1/workspaces/ws/history?limit=3", &ann).await.expect(200);
    let kinds: Vec<_> = h.body["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // newest first: the bindings and membership end, then the group goes
    assert_eq!(kinds, ["group_deleted", "member_removed", "binding_removed"]);
    assert_eq!(h.body["items"][2]["details"]["reason"], "group deleted");
}

async fn id3_api_key_never_holds_more_than_its_creator_holds_now(app: TestApp) {
    let admin = app.admin_token.clone();
    // an admin's installation key stops working when the admin role is taken away
    app.post("/api/v1/users", &admin, json!({"username": "bob", "email": "bob@example.org", "password": "password-of-bob", "installation_roles": ["admin"]})).await.expect(201);
    let bob = app.sign_in("bob", "password-of-bob").await;
    let key = app.post("/api/v1/api-keys", &bob, json!({"name": "ci", "role": "admin"})).await.expect(201);
    let key = key.body["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/users", &key).await.expect(200);
    app.patch("/api/v1/users/bob", &admin, json!({"installation_roles": []})).await.expect(200);
    app.post(
        "/api/v1/users",
        &key,
        json!({"username": "evil", "email": "evil@example.org", "installation_roles": ["admin"]}),
    )
    .await
    .expect_problem(401, None);

    // a manager's workspace key follows its creator's role in the workspace
    let ann = app.user("ann").await;
    let mgr = app.user("mgr").await;
    app.workspace(&ann, "w1").await;
    app.invite(&ann, "w1", "mgr", "workspace_manager").await;
    let key = app
        .post("/api/v1/api-keys", &mgr, json!({"name": "tf", "workspace": "w1", "role": "workspace_manager"}))
        .await
        .expect(201);
    let key = key.body["secret"].as_str().unwrap().to_owned();
    app.post("/api/v1/workspaces/w1/projects", &key, json!({"identifier": "a", "display_name": "A"})).await.expect(201);
    // demoted: the key may only read
    app.patch("/api/v1/workspaces/w1/members/user:mgr", &ann, json!({"role": "workspace_member"})).await.expect(200);
    app.get("/api/v1/workspaces/w1/projects", &key).await.expect(200);
    app.post("/api/v1/workspaces/w1/projects", &key, json!({"identifier": "b", "display_name": "B"}))
        .await
        .expect_problem(403, None);
    // removed: the key cannot bring its creator back
    app.delete("/api/v1/workspaces/w1/members/user:mgr", &ann).await.expect(204);
    app.post("/api/v1/workspaces/w1/members", &key, json!({"user": "mgr", "role": "workspace_manager"}))
        .await
        .expect_problem(401, None);
    app.get("/api/v1/workspaces/w1", &key).await.expect_problem(401, None);
}

async fn id1_the_installation_keeps_an_active_admin(app: TestApp) {
    // through the admin's own API key, which is not "self"
    let key = app.post("/api/v1/api-keys", &app.admin_token, json!({"name": "ops", "role": "admin"})).await.expect(201);
    let key = key.body["secret"].as_str().unwrap().to_owned();
    app.patch("/api/v1/users/admin", &key, json!({"active": false})).await.expect_problem(409, None);
    app.patch("/api/v1/users/admin", &key, json!({"installation_roles": []})).await.expect_problem(409, None);
    app.delete("/api/v1/users/admin", &key).await.expect_problem(409, None);
    // with a second admin, the first may go
    app.post(
        "/api/v1/users",
        &key,
        json!({"username": "root2", "email": "root2@example.org", "installation_roles": ["admin"]}),
    )
    .await
    .expect(201);
    app.patch("/api/v1/users/root2", &app.admin_token, json!({"installation_roles": []})).await.expect(200);
    app.patch("/api/v1/users/root2", &app.admin_token, json!({"installation_roles": ["admin"]})).await.expect(200);
    app.delete("/api/v1/users/root2", &app.admin_token).await.expect(204);
    // two admins deactivating each other at the same moment: one of them stays
    let app = std::sync::Arc::new(app);
    for round in 0..4 {
        let other = format!("second{round}");
        app.post(
            "/api/v1/users",
            &app.admin_token,
            json!({"username": other, "email": format!("{other}@example.org"),
            "password": "password-of-second", "installation_roles": ["admin"]}),
        )
        .await
        .expect(201);
        let other_token = app.sign_in(&other, "password-of-second").await;
        let (a1, a2, o) = (app.clone(), app.clone(), other.clone());
        let t1 = tokio::spawn(async move {
            a1.patch(&format!("/api/v1/users/{o}"), &a1.admin_token, json!({"active": false})).await.status
        });
        let t2 = tokio::spawn(async move {
            a2.patch("/api/v1/users/admin", &other_token, json!({"active": false})).await.status
        });
        let (s1, s2) = (t1.await.unwrap().as_u16(), t2.await.unwrap().as_u16());
        assert!(matches!((s1, s2), (200, 409) | (409, 200) | (200, 401) | (401, 200)), "round {round}: {s1} {s2}");
        let admins = app
            .sql_strings(
                "SELECT u.username FROM users u JOIN user_installation_roles r ON r.user_id = u.id \
            WHERE r.role = 'admin' AND u.active = 1",
            )
            .await;
        assert_eq!(admins.len(), 1, "round {round}: {admins:?}");
        if admins[0] != "admin" {
            return; // the bootstrap admin lost this round; nothing more to compare
        }
    }
}

async fn id3_workspace_managers_see_and_revoke_their_workspace_keys(app: TestApp) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mem = app.user("mem").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_manager").await;
    app.invite(&ann, "ws", "mem", "workspace_member").await;
    let k = app
        .post("/api/v1/api-keys", &bob, json!({"name": "bobs-ci", "workspace": "ws", "role": "workspace_manager"}))
        .await
        .expect(201);
    let (id, secret) =
        (k.body["key"]["id"].as_str().unwrap().to_owned(), k.body["secret"].as_str().unwrap().to_owned());
    // ann does not see bob's key among her own, but among the workspace's
    assert!(app.get("/api/v1/api-keys", &ann).await.body["items"].as_array().unwrap().is_empty());
    let r = app.get("/api/v1/api-keys?workspace=ws", &ann).await.expect(200);
    assert_eq!(r.body["items"][0]["name"], "bobs-ci");
    assert_eq!(r.body["items"][0]["created_by"], "bob");
    // a plain member may neither list nor revoke them
    app.get("/api/v1/api-keys?workspace=ws", &mem).await.expect_problem(403, None);
    app.delete(&format!("/api/v1/api-keys/{id}"), &mem).await.expect_problem(404, None);
    app.delete(&format!("/api/v1/api-keys/{id}"), &ann).await.expect(204);
    app.get("/api/v1/workspaces/ws", &secret).await.expect_problem(401, None);
    app.get("/api/v1/api-keys?workspace=nope", &ann).await.expect_problem(404, None);
}

canopy_testkit::backend_tests! {
    id3_workspace_managers_see_and_revoke_their_workspace_keys,
    id1_the_installation_keeps_an_active_admin,
    id3_api_key_never_holds_more_than_its_creator_holds_now,
    id2_admins_manage_groups_and_deleting_one_ends_its_access,
    id1_local_account_signs_in_and_passwords_are_stored_hashed,
    id1_sessions_expire_with_the_clock,
    id1_repeated_failed_sign_ins_are_throttled,
    id1_admin_manages_users,
    id3_workspace_api_key_acts_only_in_its_workspace,
    id3_installation_api_key_for_automation,
}
