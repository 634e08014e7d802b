//! WS: workspaces and workspace access, through the REST API.

use canopy_testkit::TestApp;
use serde_json::json;

async fn ws1_create_rename_and_list_workspaces(app: TestApp) {
    let ann = app.user("ann").await;
    let r = app
        .post("/api/v1/workspaces", &ann, json!({"identifier": "team-a", "display_name": "Team A"}))
        .await
        .expect(201);
    assert_eq!(r.body["identifier"], "team-a");
    assert_eq!(r.body["my_role"], "workspace_owner", "the creator becomes owner");
    app.post("/api/v1/workspaces", &ann, json!({"identifier": "team-b", "display_name": "Team B"})).await.expect(201);

    let r = app.patch("/api/v1/workspaces/team-a", &ann, json!({"display_name": "Team Alpha"})).await.expect(200);
    assert_eq!(r.body["display_name"], "Team Alpha");

    let r = app.get("/api/v1/workspaces", &ann).await.expect(200);
    let ids: Vec<_> =
        r.body["items"].as_array().unwrap().iter().map(|w| w["identifier"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["team-a", "team-b"]);

    // paging: one at a time
    let r = app.get("/api/v1/workspaces?limit=1", &ann).await.expect(200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v1/workspaces?limit=1&cursor={cursor}"), &ann).await.expect(200);
    assert_eq!(r.body["items"][0]["identifier"], "team-b");
    assert!(r.body["next_cursor"].is_null());

    // another user does not see them
    let bob = app.user("bob").await;
    let r = app.get("/api/v1/workspaces", &bob).await.expect(200);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

async fn ws1_identifier_rules_and_uniqueness(app: TestApp) {
    let ann = app.user("ann").await;
    for bad in ["", "Team-A", "team_a", "team a", &"a".repeat(33)] {
        let before = app.snapshot().await;
        app.post("/api/v1/workspaces", &ann, json!({"identifier": bad, "display_name": "X"}))
            .await
            .expect_problem(422, Some("identifier"));
        assert_eq!(app.snapshot().await, before, "nothing written for {bad:?}");
    }
    app.post("/api/v1/workspaces", &ann, json!({"identifier": &"a".repeat(32), "display_name": "Long"}))
        .await
        .expect(201);
    app.workspace(&ann, "team-a").await;
    let before = app.snapshot().await;
    app.post("/api/v1/workspaces", &ann, json!({"identifier": "team-a", "display_name": "Again"}))
        .await
        .expect_problem(409, Some("identifier"));
    assert_eq!(app.snapshot().await, before);
    // both fields wrong: both named in one answer
    let r = app
        .post("/api/v1/workspaces", &ann, json!({"identifier": "A", "display_name": "  "}))
        .await
        .expect_problem(422, None);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["display_name", "identifier"]);
}

async fn ws2_roles_decide_what_members_may_do(app: TestApp) {
    let owner = app.user("owner").await;
    let manager = app.user("manager").await;
    let member = app.user("member").await;
    app.workspace(&owner, "ws").await;
    app.invite(&owner, "ws", "manager", "workspace_manager").await;
    app.invite(&owner, "ws", "member", "workspace_member").await;

    // members see the workspace, its members and projects
    app.get("/api/v1/workspaces/ws", &member).await.expect(200);
    app.get("/api/v1/workspaces/ws/members", &member).await.expect(200);
    app.get("/api/v1/workspaces/ws/projects", &member).await.expect(200);
    // ... but administer nothing
    app.post("/api/v1/workspaces/ws/projects", &member, json!({"identifier": "p", "display_name": "P"}))
        .await
        .expect_problem(403, None);
    app.patch("/api/v1/workspaces/ws", &member, json!({"display_name": "Mine"})).await.expect_problem(403, None);
    app.get("/api/v1/workspaces/ws/history", &member).await.expect_problem(403, None);

    // managers administer, but cannot make owners or delete the workspace
    app.post("/api/v1/workspaces/ws/projects", &manager, json!({"identifier": "p", "display_name": "P"}))
        .await
        .expect(201);
    app.get("/api/v1/workspaces/ws/history", &manager).await.expect(200);
    app.patch("/api/v1/workspaces/ws/members/user:member", &manager, json!({"role": "workspace_owner"}))
        .await
        .expect_problem(403, None);
    app.delete("/api/v1/workspaces/ws", &manager).await.expect_problem(403, None);
    // owners can
    app.patch("/api/v1/workspaces/ws/members/user:manager", &owner, json!({"role": "workspace_owner"}))
        .await
        .expect(200);
}

async fn ws3_invite_by_username_email_and_pending_invitation(app: TestApp) {
    let ann = app.user("ann").await;
    app.user("bob").await;
    app.workspace(&ann, "ws").await;
    // by username
    let r = app
        .post("/api/v1/workspaces/ws/members", &ann, json!({"user": "bob", "role": "workspace_member"}))
        .await
        .expect(201);
    assert_eq!(r.body["subject"], "user:bob");
    // by the e-mail of an existing account: that account becomes a member
    app.user("cid").await;
    let r = app
        .post("/api/v1/workspaces/ws/members", &ann, json!({"email": "CID@example.org", "role": "workspace_manager"}))
        .await
        .expect(201);
    assert_eq!(r.body["subject"], "user:cid");
    // by an unknown e-mail: a pending invitation
    let r = app
        .post("/api/v1/workspaces/ws/members", &ann, json!({"email": "dora@example.org", "role": "workspace_manager"}))
        .await
        .expect(201);
    assert_eq!(r.body["kind"], "invitation");
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "dora@example.org", "role": "workspace_member"}))
        .await
        .expect_problem(409, Some("email"));
    // a deactivated account cannot be invited by its address either
    app.user("gone").await;
    app.patch("/api/v1/users/gone", &app.admin_token, json!({"active": false})).await.expect(200);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "gone@example.org", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("email"));
    // a manager cannot withdraw an invitation to the owner role
    let mia = app.user("mia").await;
    app.invite(&ann, "ws", "mia", "workspace_manager").await;
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "boss@example.org", "role": "workspace_owner"}))
        .await
        .expect(201);
    app.delete("/api/v1/workspaces/ws/members/email:boss@example.org", &mia).await.expect_problem(403, None);
    app.delete("/api/v1/workspaces/ws/members/email:boss@example.org", &ann).await.expect(204);
    let r = app.get("/api/v1/workspaces/ws/members", &ann).await.expect(200);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == "email:dora@example.org" && m["kind"] == "invitation")
    );

    // the account with that address appears and signs in: the invitation becomes membership
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "dora", "email": "dora@example.org", "password": "password-of-dora"}),
    )
    .await
    .expect(201);
    let dora = app.sign_in("dora", "password-of-dora").await;
    let r = app.get("/api/v1/workspaces/ws", &dora).await.expect(200);
    assert_eq!(r.body["my_role"], "workspace_manager");
    let r = app.get("/api/v1/workspaces/ws/members", &ann).await.expect(200);
    let items = r.body["items"].as_array().unwrap();
    assert!(items.iter().any(|m| m["subject"] == "user:dora"));
    assert!(!items.iter().any(|m| m["kind"] == "invitation"));
    let h = app.get("/api/v1/workspaces/ws/history?kind=invitation_accepted", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["email"], "dora@example.org");
}

async fn ws4_group_members_gain_the_workspace_role(app: TestApp) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "devs", "display_name": "Developers"}))
        .await
        .expect(201);
    app.post("/api/v1/groups/devs/members", &app.admin_token, json!({"user": "bob"})).await.expect(201);
    app.get("/api/v1/workspaces/ws", &bob).await.expect_problem(403, None);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "devs", "role": "workspace_manager"}))
        .await
        .expect(201);
    let r = app.get("/api/v1/workspaces/ws", &bob).await.expect(200);
    assert_eq!(r.body["my_role"], "workspace_manager");
    // a member joining later gains it too; leaving takes it away
    let cid = app.user("cid").await;
    app.post("/api/v1/groups/devs/members", &app.admin_token, json!({"user": "cid"})).await.expect(201);
    app.get("/api/v1/workspaces/ws", &cid).await.expect(200);
    app.delete("/api/v1/groups/devs/members/bob", &app.admin_token).await.expect(204);
    app.get("/api/v1/workspaces/ws", &bob).await.expect_problem(403, None);
}

async fn ws5_current_access_lists_roles_grantor_and_time(app: TestApp) {
    let ann = app.user("ann").await;
    app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "ops", "display_name": "Operations"}))
        .await
        .expect(201);
    app.clock.advance(time::Duration::minutes(5));
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"group": "ops", "role": "workspace_manager"}))
        .await
        .expect(201);
    let r = app.get("/api/v1/workspaces/ws/members", &ann).await.expect(200);
    let items = r.body["items"].as_array().unwrap();
    let bob = items.iter().find(|m| m["subject"] == "user:bob").unwrap();
    assert_eq!(bob["role"], "workspace_member");
    assert_eq!(bob["granted_by"], "ann");
    assert_eq!(bob["granted_at"], "2026-11-23T10:05:00Z");
    assert_eq!(bob["display_name"], "Bob Tester");
    let ops = items.iter().find(|m| m["subject"] == "group:ops").unwrap();
    assert_eq!(ops["kind"], "group");
    assert_eq!(ops["role"], "workspace_manager");
    assert!(items.iter().any(|m| m["subject"] == "user:ann" && m["role"] == "workspace_owner"));
}

async fn ws6_change_role_and_removal_ends_project_bindings(app: TestApp) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.project(&ann, "ws", "web").await;
    app.project(&ann, "ws", "api").await;
    for p in ["web", "api"] {
        app.post(
            &format!("/api/v1/workspaces/ws/projects/{p}/bindings"),
            &ann,
            json!({"user": "bob", "role": "project_user"}),
        )
        .await
        .expect(201);
    }
    let r = app
        .patch("/api/v1/workspaces/ws/members/user:bob", &ann, json!({"role": "workspace_manager"}))
        .await
        .expect(200);
    assert_eq!(r.body["role"], "workspace_manager");
    let me = app.get("/api/v1/me", &bob).await.expect(200);
    assert_eq!(me.body["projects"].as_array().unwrap().len(), 2);

    app.delete("/api/v1/workspaces/ws/members/user:bob", &ann).await.expect(204);
    for p in ["web", "api"] {
        let r = app.get(&format!("/api/v1/workspaces/ws/projects/{p}/bindings"), &ann).await.expect(200);
        assert!(r.body["items"].as_array().unwrap().is_empty(), "bob's binding on {p} ended");
    }
    let me = app.get("/api/v1/me", &bob).await.expect(200);
    assert!(me.body["projects"].as_array().unwrap().is_empty());
    app.get("/api/v1/workspaces/ws", &bob).await.expect_problem(403, None);
    let h = app.get("/api/v1/workspaces/ws/history?kind=binding_removed", &ann).await.expect(200);
    assert_eq!(h.body["items"].as_array().unwrap().len(), 2);

    // the last owner stays
    app.delete("/api/v1/workspaces/ws/members/user:ann", &ann).await.expect_problem(409, None);
    app.patch("/api/v1/workspaces/ws/members/user:ann", &ann, json!({"role": "workspace_member"}))
        .await
        .expect_problem(409, None);
    app.delete("/api/v1/workspaces/ws/members/user:nobody", &ann).await.expect_problem(404, None);
}

async fn ws6_access_leaves_with_the_group_that_gave_membership(app: TestApp) {
    let ann = app.user("ann").await;
    let carl = app.user("carl").await;
    let dana = app.user("dana").await;
    let admin = app.admin_token.clone();
    app.workspace(&ann, "w2").await;
    app.project(&ann, "w2", "p").await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Devs"})).await.expect(201);
    for u in ["carl", "dana"] {
        app.post("/api/v1/groups/devs/members", &admin, json!({"user": u})).await.expect(201);
    }
    app.post("/api/v1/workspaces/w2/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    // dana is also a member in her own right
    app.invite(&ann, "w2", "dana", "workspace_member").await;
    for u in ["carl", "dana"] {
        app.post("/api/v1/workspaces/w2/projects/p/bindings", &ann, json!({"user": u, "role": "project_admin"}))
            .await
            .expect(201);
    }
    // the group leaves the workspace: carl's direct binding goes with it, dana's stays
    app.delete("/api/v1/workspaces/w2/members/group:devs", &ann).await.expect(204);
    assert_eq!(app.get("/api/v1/me", &carl).await.body["projects"], json!([]));
    assert_eq!(app.get("/api/v1/me", &dana).await.body["projects"][0]["project"], "p");
    let h = app.get("/api/v1/workspaces/w2/history?kind=binding_removed", &ann).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["subject"], "user:carl");

    // leaving the group has the same effect
    app.post("/api/v1/workspaces/w2/members", &ann, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    app.post("/api/v1/workspaces/w2/projects/p/bindings", &ann, json!({"user": "carl", "role": "project_user"}))
        .await
        .expect(201);
    app.delete("/api/v1/groups/devs/members/carl", &admin).await.expect(204);
    assert_eq!(app.get("/api/v1/me", &carl).await.body["projects"], json!([]));
    let r = app.get("/api/v1/workspaces/w2/projects/p", &ann).await.expect(200);
    let users: Vec<_> = r.body["effective_access"].as_array().unwrap().iter().map(|e| e["username"].clone()).collect();
    assert_eq!(users, [json!("dana")]);
}

async fn ws6_membership_ending_on_two_paths_at_once_still_ends_access(app: TestApp) {
    // carl is a member only through ga and gb; ga leaves the workspace while
    // carl leaves gb: whichever lands second must end his direct binding
    let ann = app.user("ann").await;
    let carl = app.user("carl").await;
    let admin = app.admin_token.clone();
    let app = std::sync::Arc::new(app);
    for round in 0..5 {
        let (ws, ga, gb) = (format!("r{round}"), format!("ga{round}"), format!("gb{round}"));
        app.workspace(&ann, &ws).await;
        app.project(&ann, &ws, "p").await;
        for g in [&ga, &gb] {
            app.post("/api/v1/groups", &admin, json!({"identifier": g, "display_name": "G"})).await.expect(201);
            app.post(&format!("/api/v1/groups/{g}/members"), &admin, json!({"user": "carl"})).await.expect(201);
            app.post(
                &format!("/api/v1/workspaces/{ws}/members"),
                &ann,
                json!({"group": g, "role": "workspace_member"}),
            )
            .await
            .expect(201);
        }
        app.post(
            &format!("/api/v1/workspaces/{ws}/projects/p/bindings"),
            &ann,
            json!({"user": "carl", "role": "project_admin"}),
        )
        .await
        .expect(201);
        let (a1, a2, ann1, admin2) = (app.clone(), app.clone(), ann.clone(), admin.clone());
        let (ws1, ga1, gb2) = (ws.clone(), ga.clone(), gb.clone());
        let t1 = tokio::spawn(async move {
            a1.delete(&format!("/api/v1/workspaces/{ws1}/members/group:{ga1}"), &ann1).await.status
        });
        let t2 =
            tokio::spawn(async move { a2.delete(&format!("/api/v1/groups/{gb2}/members/carl"), &admin2).await.status });
        assert_eq!((t1.await.unwrap().as_u16(), t2.await.unwrap().as_u16()), (204, 204));
        let r = app.get(&format!("/api/v1/workspaces/{ws}/projects/p/bindings"), &ann).await.expect(200);
        assert!(r.body["items"].as_array().unwrap().is_empty(), "round {round}: {:#}", r.body);
    }
    assert_eq!(app.get("/api/v1/me", &carl).await.body["projects"], json!([]));
}

async fn ws6_a_member_removed_while_being_bound_keeps_no_binding(app: TestApp) {
    // binding adds of one workspace run side by side (they share its row),
    // but none may land after its subject's removal and outlive it
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for p in ["p0", "p1", "p2", "p3"] {
        app.project(&ann, "ws", p).await;
    }
    let app = std::sync::Arc::new(app);
    for round in 0..6 {
        let name = format!("m{round}");
        app.user(&name).await;
        app.invite(&ann, "ws", &name, "workspace_member").await;
        let mut tasks = Vec::new();
        for p in ["p0", "p1", "p2", "p3"] {
            let (app, ann, name) = (app.clone(), ann.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                let body = json!({"user": name, "role": "project_user"});
                app.post(&format!("/api/v1/workspaces/ws/projects/{p}/bindings"), &ann, body).await.status.as_u16()
            }));
        }
        let (a, ann1, name1) = (app.clone(), ann.clone(), name.clone());
        let removal = tokio::spawn(async move {
            a.delete(&format!("/api/v1/workspaces/ws/members/user:{name1}"), &ann1).await.status.as_u16()
        });
        for t in tasks {
            // bound before the removal (which then ends it), or refused after it
            let status = t.await.unwrap();
            assert!(status == 201 || status == 422, "round {round}: a binding add answered {status}");
        }
        assert_eq!(removal.await.unwrap(), 204);
        for p in ["p0", "p1", "p2", "p3"] {
            let r = app.get(&format!("/api/v1/workspaces/ws/projects/{p}/bindings"), &ann).await.expect(200);
            assert!(r.body["items"].as_array().unwrap().is_empty(), "round {round}, {p}: {:#}", r.body);
        }
    }
}

async fn ws6_a_member_removal_is_not_held_off_by_a_stream_of_binding_adds(app: TestApp) {
    // Binding adds share the workspace; a removal takes it alone. A removal
    // asked for while adds keep coming gets its turn among them, not only
    // once they stop (PostgreSQL grants a new FOR SHARE beside the holders
    // while an exclusive locker waits: 11 s under B4's adds).
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const WRITERS: usize = 16;
    const PROJECTS: usize = 16;
    const ROLES: [&str; 3] = ["project_reader", "project_user", "project_admin"];
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for p in 0..PROJECTS {
        app.project(&ann, "ws", &format!("p{p}")).await;
    }
    app.user("leaver").await;
    app.invite(&ann, "ws", "leaver", "workspace_member").await;
    for i in 0..WRITERS {
        app.user(&format!("b{i}")).await;
        app.invite(&ann, "ws", &format!("b{i}"), "workspace_member").await;
    }
    let app = std::sync::Arc::new(app);
    let (adds, running) = (std::sync::Arc::new(AtomicUsize::new(0)), std::sync::Arc::new(AtomicUsize::new(WRITERS)));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (app, ann, adds, running, stop) = (app.clone(), ann.clone(), adds.clone(), running.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            'all: for p in 0..PROJECTS {
                for role in ROLES {
                    if stop.load(Ordering::SeqCst) {
                        break 'all;
                    }
                    let body = json!({"user": format!("b{i}"), "role": role});
                    app.post(&format!("/api/v1/workspaces/ws/projects/p{p}/bindings"), &ann, body).await.expect(201);
                    adds.fetch_add(1, Ordering::SeqCst);
                }
            }
            running.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    // (a writer that failed ends early: its panic is reported below)
    while adds.load(Ordering::SeqCst) < 2 * WRITERS && !tasks.iter().any(|t| t.is_finished()) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let asked_at = adds.load(Ordering::SeqCst);
    app.delete("/api/v1/workspaces/ws/members/user:leaver", &ann).await.expect(204);
    let (done_at, still_running) = (adds.load(Ordering::SeqCst), running.load(Ordering::SeqCst));
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        still_running == WRITERS,
        "the removal (asked after {asked_at} adds) waited for the adds to stop: it returned after {done_at} of {}, \
         with {still_running} of {WRITERS} writers still adding",
        WRITERS * PROJECTS * ROLES.len()
    );
}

async fn ws6_an_owning_group_can_leave_beside_a_single_user_owner(app: TestApp) {
    let alice = app.user("alice").await;
    app.workspace(&alice, "ws").await;
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "ops", "display_name": "Ops"})).await.expect(201);
    app.post("/api/v1/workspaces/ws/members", &alice, json!({"group": "ops", "role": "workspace_owner"}))
        .await
        .expect(201);
    app.patch("/api/v1/workspaces/ws/members/group:ops", &alice, json!({"role": "workspace_member"})).await.expect(200);
    app.delete("/api/v1/workspaces/ws/members/group:ops", &alice).await.expect(204);
    // the user owner still may not go
    app.delete("/api/v1/workspaces/ws/members/user:alice", &alice).await.expect_problem(409, None);
}

async fn ws6_two_owners_removing_each_other_at_once_leave_one_owner(app: TestApp) {
    let oa = app.user("oa").await;
    let ob = app.user("ob").await;
    let app = std::sync::Arc::new(app);
    for round in 0..5 {
        let ws = format!("w{round}");
        app.workspace(&oa, &ws).await;
        app.invite(&oa, &ws, "ob", "workspace_owner").await;
        let (app1, app2, oa1, ob1, ws1, ws2) =
            (app.clone(), app.clone(), oa.clone(), ob.clone(), ws.clone(), ws.clone());
        let a = tokio::spawn(async move {
            app1.delete(&format!("/api/v1/workspaces/{ws1}/members/user:ob"), &oa1).await.status
        });
        let b = tokio::spawn(async move {
            app2.delete(&format!("/api/v1/workspaces/{ws2}/members/user:oa"), &ob1).await.status
        });
        let (a, b) = (a.await.unwrap().as_u16(), b.await.unwrap().as_u16());
        // one wins; the other is refused (the last owner stays, or the loser is no longer an owner)
        assert!(matches!((a, b), (204, 409) | (409, 204) | (204, 403) | (403, 204)), "round {round}: {a} {b}");
        let members = app.get(&format!("/api/v1/workspaces/{ws}/members"), &app.admin_token).await.expect(200);
        let owners =
            members.body["items"].as_array().unwrap().iter().filter(|m| m["role"] == "workspace_owner").count();
        assert_eq!(owners, 1, "round {round}");
    }
}

async fn ws7_manager_manages_projects_they_are_not_bound_to(app: TestApp) {
    let ann = app.user("ann").await;
    let mia = app.user("mia").await;
    app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.project(&ann, "ws", "web").await;
    app.invite(&ann, "ws", "mia", "workspace_manager").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    // mia holds no binding on web, yet manages its access
    let b = app
        .post("/api/v1/workspaces/ws/projects/web/bindings", &mia, json!({"user": "bob", "role": "project_reader"}))
        .await
        .expect(201);
    let id = b.body["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/workspaces/ws/projects/web/bindings/{id}"), &mia, json!({"role": "project_admin"}))
        .await
        .expect(200);
    app.patch("/api/v1/workspaces/ws/projects/web", &mia, json!({"display_name": "Website"})).await.expect(200);
    app.delete(&format!("/api/v1/workspaces/ws/projects/web/bindings/{id}"), &mia).await.expect(204);
}

async fn ws_workspace_deletion_needs_owner_and_no_projects(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    app.project(&ann, "ws", "web").await;
    app.delete("/api/v1/workspaces/ws", &ann).await.expect_problem(409, None);
    app.delete("/api/v1/workspaces/ws/projects/web", &ann).await.expect(204);
    app.delete("/api/v1/workspaces/ws", &ann).await.expect(204);
    app.get("/api/v1/workspaces/ws", &ann).await.expect_problem(404, None);
    // its history stays verifiable, and the identifier can be used again
    let v = app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200);
    assert_eq!(v.body["ok"], true);
    app.workspace(&ann, "ws").await;
}

canopy_testkit::backend_tests! {
    ws1_create_rename_and_list_workspaces,
    ws1_identifier_rules_and_uniqueness,
    ws2_roles_decide_what_members_may_do,
    ws3_invite_by_username_email_and_pending_invitation,
    ws4_group_members_gain_the_workspace_role,
    ws5_current_access_lists_roles_grantor_and_time,
    ws6_change_role_and_removal_ends_project_bindings,
    ws6_two_owners_removing_each_other_at_once_leave_one_owner,
    ws6_membership_ending_on_two_paths_at_once_still_ends_access,
    ws6_a_member_removed_while_being_bound_keeps_no_binding,
    ws6_a_member_removal_is_not_held_off_by_a_stream_of_binding_adds,
    ws6_an_owning_group_can_leave_beside_a_single_user_owner,
    ws6_access_leaves_with_the_group_that_gave_membership,
    ws7_manager_manages_projects_they_are_not_bound_to,
    ws_workspace_deletion_needs_owner_and_no_projects,
}
