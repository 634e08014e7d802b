//! AC7 and the rest of the access lifecycle: bindings end by themselves when
//! they expire. The expiry job is driven with its single step and the
//! settable clock; `nodes.rs` runs it in a real `canopy serve` after downtime.

use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_engine::expiry::{LOOK_AGAIN, end_due, until_next};
use canopy_testkit::TestApp;
use serde_json::{Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use crate::tenants::unique;

fn at(app: &TestApp, from_now: Duration) -> String {
    (app.clock.now() + from_now).format(&Rfc3339).unwrap()
}

async fn ac7_expiry_job_ends_each_expired_binding_once_and_wakes_at_the_next(app: TestApp) {
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for u in ["ann", "bob"] {
        app.user(u).await;
        app.invite(&app.admin_token, &ws, u, "workspace_member").await;
    }
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), LOOK_AGAIN, "nothing expires");
    let body = json!({"user": "ann", "role": "project_user", "expires_at": at(&app, Duration::hours(2))});
    app.post(&bindings, &app.admin_token, body).await.expect(201);
    let body = json!({"user": "bob", "role": "project_reader", "expires_at": at(&app, Duration::seconds(3))});
    let bob = app.post(&bindings, &app.admin_token, body).await.expect(201).body["id"].as_str().unwrap().to_owned();
    app.post(&bindings, &app.admin_token, json!({"user": "bob", "role": "project_user"})).await.expect(201);
    // the job sleeps until the next expiration, not a coarse tick
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), StdDuration::from_secs(3));
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 0);

    app.clock.advance(Duration::seconds(4));
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), StdDuration::ZERO, "bob's is due");
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 1);
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 0, "a binding is ended once");
    assert_eq!(until_next(&app.store, app.clock.as_ref()).await.unwrap(), LOOK_AGAIN, "ann's is hours away");
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=binding_expired"), &app.admin_token).await;
    let events = h.expect(200).body["items"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["initiator"]["kind"], "system");
    assert_eq!(events[0]["initiator"]["name"], "expiry");
    assert_eq!(
        (events[0]["details"]["subject"].as_str(), events[0]["details"]["role"].as_str()),
        (Some("user:bob"), Some("project_reader"))
    );
    // the ended binding stays, no longer in force, and can be extended
    let list = app.get(&bindings, &app.admin_token).await.expect(200).body;
    let row = list["items"].as_array().unwrap().iter().find(|b| b["id"] == bob.as_str()).unwrap().clone();
    assert_eq!(row["in_force"], false, "{row}");
    app.patch(&format!("{bindings}/{bob}"), &app.admin_token, json!({"expires_at": at(&app, Duration::hours(1))}))
        .await
        .expect(200);
    let list = app.get(&bindings, &app.admin_token).await.expect(200).body;
    let row: Value = list["items"].as_array().unwrap().iter().find(|b| b["id"] == bob.as_str()).unwrap().clone();
    assert_eq!(row["in_force"], true, "{row}");

    // after a long stop both pass; each is ended at the first pass
    app.clock.advance(Duration::days(3));
    assert_eq!(end_due(&app.store, app.clock.as_ref()).await.unwrap(), 2);
    let admin = app.sign_in("admin", canopy_testkit::ADMIN_PASSWORD).await; // days later: a new session
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?kind=binding_expired"), &admin).await;
    assert_eq!(h.expect(200).body["items"].as_array().unwrap().len(), 3);
}

canopy_testkit::backend_tests!(ac7_expiry_job_ends_each_expired_binding_once_and_wakes_at_the_next);
