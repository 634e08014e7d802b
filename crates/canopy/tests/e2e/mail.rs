//! WS3: pending invitations are announced by e-mail, through the outbox and
//! the engine's mail sender, to a real SMTP server (maildev).

use canopy_engine::mailer::{Delivery, Mailer, deliver_due};
use canopy_testkit::TestApp;
use serde_json::json;
use time::Duration;

/// A unique address, since the sink is shared by every test of the run
/// (ports are reused, so they do not make addresses unique).
fn address(_app: &TestApp, who: &str) -> String {
    format!("{who}-{}@invited.example", uuid::Uuid::new_v4().simple())
}

async fn ws3_pending_invitation_is_announced_by_email(app: TestApp) {
    let Some(sink) = canopy_testkit::mail_sink() else { return };
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let dora = address(&app, "dora");
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": dora, "role": "workspace_manager"}))
        .await
        .expect(201);
    // inviting an existing account, or a refused invitation, sends nothing
    app.user("bob").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": dora, "role": "workspace_member"}))
        .await
        .expect_problem(409, Some("email"));

    let mailer = Mailer::new(&sink.smtp_url, "Canopy <canopy@test.example>").unwrap();
    let d = deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    assert_eq!(d, Delivery { sent: 1, failed: 0 });
    let received = sink.messages_to(&dora).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    let m = &received[0];
    assert_eq!(m["subject"], "You are invited to the workspace Workspace ws");
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("ann invited"), "{text}");
    assert!(text.contains("Workspace Manager"), "{text}");
    assert_eq!(m["from"][0]["address"], "canopy@test.example");
    // sent once: a second pass finds nothing to do
    assert_eq!(deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap(), Delivery::default());
    assert_eq!(sink.messages_to(&dora).await.len(), 1);
}

async fn ws3_undeliverable_invitation_mail_is_retried_later(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let eve = address(&app, "eve");
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": eve, "role": "workspace_member"}))
        .await
        .expect(201);
    // an SMTP server that is not there
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = Mailer::new(&format!("smtp://127.0.0.1:{port}"), "canopy@test.example").unwrap();
    assert_eq!(deliver_due(&app.store, &down, app.clock.as_ref()).await.unwrap(), Delivery { sent: 0, failed: 1 });
    let pending = app.store.pending_mails().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0.recipient, eve);
    assert!(pending[0].1.is_some(), "the error is kept");
    // not retried before its delay has passed
    assert_eq!(deliver_due(&app.store, &down, app.clock.as_ref()).await.unwrap(), Delivery::default());
    app.clock.advance(Duration::seconds(31));
    assert_eq!(deliver_due(&app.store, &down, app.clock.as_ref()).await.unwrap(), Delivery { sent: 0, failed: 1 });
    // once a server answers, it goes out
    let Some(sink) = canopy_testkit::mail_sink() else { return };
    app.clock.advance(Duration::minutes(2));
    let up = Mailer::new(&sink.smtp_url, "canopy@test.example").unwrap();
    assert_eq!(deliver_due(&app.store, &up, app.clock.as_ref()).await.unwrap(), Delivery { sent: 1, failed: 0 });
    assert_eq!(sink.messages_to(&eve).await.len(), 1);
    assert!(app.store.pending_mails().await.unwrap().is_empty());
}

async fn ws3_refused_invitation_queues_no_mail(app: TestApp) {
    // a refused invitation (not allowed) leaves no mail in the outbox
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.post("/api/v1/workspaces/ws/members", &bob, json!({"email": address(&app, "x"), "role": "workspace_member"}))
        .await
        .expect_problem(403, None);
    app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": "not an address", "role": "workspace_member"}))
        .await
        .expect_problem(422, Some("email"));
    assert!(app.store.pending_mails().await.unwrap().is_empty());
}

/// AC11: adding, changing, removing (and the expiry of) a binding e-mails
/// every person it affects; for a group, each active member.
async fn ac11_binding_changes_email_every_affected_user(app: TestApp) {
    let Some(sink) = canopy_testkit::mail_sink() else { return };
    let unique = |p: &str| format!("{p}{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (bob, cy, dee, group) = (unique("bob"), unique("cy"), unique("dee"), unique("devs"));
    app.workspace(&app.admin_token, "ws").await;
    app.project(&app.admin_token, "ws", "web").await;
    for u in [&bob, &cy, &dee] {
        app.user(u).await;
    }
    app.invite(&app.admin_token, "ws", &bob, "workspace_member").await;
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": group, "display_name": "Devs"}))
        .await
        .expect(201);
    for u in [&cy, &dee] {
        app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": u})).await.expect(201);
    }
    app.patch(&format!("/api/v1/users/{dee}"), &app.admin_token, json!({"active": false})).await.expect(200);
    app.post("/api/v1/workspaces/ws/members", &app.admin_token, json!({"group": group, "role": "workspace_member"}))
        .await
        .expect(201);
    let bindings = "/api/v1/workspaces/ws/projects/web/bindings";
    let soon = (canopy_domain::clock::Clock::now(app.clock.as_ref()) + Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r =
        app.post(bindings, &app.admin_token, json!({"user": bob, "role": "project_reader", "expires_at": soon})).await;
    let b = r.expect(201).body["id"].as_str().unwrap().to_owned();
    let r = app.post(bindings, &app.admin_token, json!({"group": group, "role": "project_user"})).await;
    let g = r.expect(201).body["id"].as_str().unwrap().to_owned();
    app.patch(&format!("{bindings}/{b}"), &app.admin_token, json!({"role": "project_admin"})).await.expect(200);
    app.delete(&format!("{bindings}/{g}"), &app.admin_token).await.expect(204);
    app.clock.advance(Duration::hours(3));
    canopy_engine::expiry::end_due(&app.store, app.clock.as_ref()).await.unwrap();

    let mailer = Mailer::new(&sink.smtp_url, "canopy@test.example").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let subjects = |msgs: Vec<serde_json::Value>| -> Vec<String> {
        let mut s: Vec<String> = msgs.iter().map(|m| m["subject"].as_str().unwrap().to_owned()).collect();
        s.sort();
        s
    };
    assert_eq!(
        subjects(sink.messages_to(&format!("{bob}@example.org")).await),
        [
            "You were given project_reader on web",
            "Your access changed: project_admin on web",
            "Your access expired: project_admin on web"
        ]
    );
    let to_cy = sink.messages_to(&format!("{cy}@example.org")).await;
    assert_eq!(
        subjects(to_cy.clone()),
        ["You no longer have project_user on web", "You were given project_user on web"]
    );
    assert!(
        to_cy.iter().all(|m| m["text"].as_str().unwrap().contains(&format!("through the group {group}"))),
        "{to_cy:#?}"
    );
    assert!(sink.messages_to(&format!("{dee}@example.org")).await.is_empty(), "a deactivated member is not mailed");
}

/// AC8, AC12: a week before it expires, a binding's notice goes out once, to
/// the person and to the workspace's managers; extending it re-arms it.
async fn ac12_soon_expiring_binding_is_announced_once_to_the_person_and_managers(app: TestApp) {
    let Some(sink) = canopy_testkit::mail_sink() else { return };
    let unique = |p: &str| format!("{p}{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (bob, mia) = (unique("bob"), unique("mia"));
    app.workspace(&app.admin_token, "ws").await;
    app.project(&app.admin_token, "ws", "web").await;
    app.user(&bob).await;
    app.user(&mia).await;
    app.invite(&app.admin_token, "ws", &bob, "workspace_member").await;
    app.invite(&app.admin_token, "ws", &mia, "workspace_manager").await;
    let at = |days: i64| {
        (canopy_domain::clock::Clock::now(app.clock.as_ref()) + Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let bindings = "/api/v1/workspaces/ws/projects/web/bindings";
    let r = app
        .post(bindings, &app.admin_token, json!({"user": bob, "role": "project_reader", "expires_at": at(10)}))
        .await;
    let id = r.expect(201).body["id"].as_str().unwrap().to_owned();
    let notify = || canopy_engine::expiry::notify_soon(&app.store, app.clock.as_ref());
    assert_eq!(notify().await.unwrap(), 0, "ten days ahead: not yet");
    app.clock.advance(Duration::days(4));
    assert_eq!(notify().await.unwrap(), 1);
    assert_eq!(notify().await.unwrap(), 0, "once per binding");
    let mailer = Mailer::new(&sink.smtp_url, "canopy@test.example").unwrap();
    deliver_due(&app.store, &mailer, app.clock.as_ref()).await.unwrap();
    let to_bob = sink.messages_to(&format!("{bob}@example.org")).await;
    let subjects: Vec<&str> = to_bob.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert!(subjects.contains(&"Your access expires soon: project_reader on web"), "{subjects:?}");
    let to_mia = sink.messages_to(&format!("{mia}@example.org")).await;
    assert_eq!(to_mia.len(), 1, "{to_mia:#?}");
    assert_eq!(to_mia[0]["subject"], format!("Access expires soon: user:{bob} on web"));
    // extended: a new expiration gets its own notice when it comes near
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await;
    app.patch(&format!("{bindings}/{id}"), &admin, json!({"expires_at": at(20)})).await.expect(200);
    assert_eq!(notify().await.unwrap(), 0);
    app.clock.advance(Duration::days(14));
    assert_eq!(notify().await.unwrap(), 1);
}

canopy_testkit::backend_tests! {
    ac12_soon_expiring_binding_is_announced_once_to_the_person_and_managers,
    ac11_binding_changes_email_every_affected_user,
    ws3_pending_invitation_is_announced_by_email,
    ws3_undeliverable_invitation_mail_is_retried_later,
    ws3_refused_invitation_queues_no_mail,
}
