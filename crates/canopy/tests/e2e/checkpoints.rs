//! SE7: the history verified against signed checkpoints held outside the
//! database, so that truncating a chain or deleting one is detected; and the
//! scheduled export of those checkpoints.

use std::sync::{Arc, Mutex};

use canopy_domain::checkpoint::Checkpoint;
use canopy_engine::checkpoints::{CheckpointExport, Webhook, export_once};
use canopy_testkit::TestApp;
use serde_json::{Value, json};

const WS_CHAIN: &str = "(SELECT id FROM workspaces WHERE identifier = 'ws')";

/// A workspace `ws` with six events (created, owner added, four projects).
async fn busy_workspace(app: &TestApp) -> String {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for p in ["a", "b", "c", "d"] {
        app.project(&ann, "ws", p).await;
    }
    ann
}

async fn checkpoints(app: &TestApp) -> Value {
    app.get("/api/v1/admin/history/checkpoints", &app.admin_token).await.expect(200).body
}

async fn verify_with(app: &TestApp, checkpoints: &Value) -> Value {
    app.post("/api/v1/admin/history/verify", &app.admin_token, json!({"checkpoints": checkpoints}))
        .await
        .expect(200)
        .body
}

async fn verify(app: &TestApp) -> Value {
    app.get("/api/v1/admin/history/verify", &app.admin_token).await.expect(200).body
}

fn of_chain<'a>(cps: &'a Value, label: &str) -> &'a Value {
    cps["checkpoints"].as_array().unwrap().iter().find(|c| c["label"] == label).unwrap()
}

fn codes(v: &Value) -> Vec<(String, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["chain"].as_str().unwrap().to_owned(), p["code"].as_str().unwrap().to_owned()))
        .collect()
}

/// Cut the events after `keep` off ws's chain and move its head back, as
/// someone with write access to the database would.
async fn truncate_ws(app: &TestApp, keep: i64) {
    app.sql(&format!("DELETE FROM history_events WHERE chain = {WS_CHAIN} AND seq > {keep}")).await;
    app.sql(&format!(
        "UPDATE history_chains SET last_seq = {keep}, last_hash = \
         (SELECT hash FROM history_events WHERE chain = {WS_CHAIN} AND seq = {keep}) WHERE chain = {WS_CHAIN}"
    ))
    .await;
}

async fn se7_untouched_history_verifies_with_its_checkpoints(app: TestApp) {
    let ann = busy_workspace(&app).await;
    let cps = checkpoints(&app).await;
    // the public key to keep with them is this installation's
    let key = app.history_key.public_key();
    assert_eq!(cps["public_key"], key.to_base64());
    assert_eq!(cps["key_id"], key.key_id());
    let list = cps["checkpoints"].as_array().unwrap();
    let labels: Vec<&str> = list.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 2, "{cps:#}");
    assert!(labels.contains(&"ws") && labels.contains(&"installation"), "{labels:?}");
    // each is signed by the installation's key, over the chain's head now
    for c in list {
        let cp: Checkpoint = serde_json::from_value(c.clone()).unwrap();
        key.check_signature(&cp).unwrap();
        assert_eq!(cp.at, canopy_testkit::START);
        let head = app.sql_strings(&format!("SELECT last_hash FROM history_chains WHERE chain = '{}'", cp.chain)).await;
        assert_eq!(head[0], cp.hash);
    }
    let ws = of_chain(&cps, "ws");
    assert_eq!(ws["seq"], 6);
    assert_eq!(app.sql_strings(&format!("SELECT {WS_CHAIN}")).await, [ws["chain"].as_str().unwrap()]);

    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["checkpoints_checked"], 2);
    assert_eq!(v["problems"], json!([]));
    assert_eq!(v["first_broken"], Value::Null);
    // the chains grow; the earlier checkpoints still hold, with the new ones too
    app.project(&ann, "ws", "e").await;
    app.user("bob").await;
    let later = checkpoints(&app).await;
    let mut both = cps["checkpoints"].as_array().unwrap().clone();
    both.extend(later["checkpoints"].as_array().unwrap().iter().cloned());
    let v = verify_with(&app, &json!(both)).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["checkpoints_checked"], 4);
    assert_eq!(verify(&app).await["ok"], true);
    // no checkpoints at all is the plain verification
    let v = verify_with(&app, &json!([])).await;
    assert_eq!((v["ok"].clone(), v["checkpoints_checked"].clone()), (json!(true), json!(0)));
    // admins only
    app.get("/api/v1/admin/history/checkpoints", &ann).await.expect_problem(403, None);
    app.post("/api/v1/admin/history/verify", &ann, json!({"checkpoints": cps["checkpoints"]}))
        .await
        .expect_problem(403, None);
}

async fn se7_truncating_a_chain_and_moving_its_head_back_is_detected_given_an_earlier_checkpoint(app: TestApp) {
    let ann = busy_workspace(&app).await;
    let cps = checkpoints(&app).await;
    truncate_ws(&app, 3).await;
    // what the database holds links up: without the checkpoint nothing shows
    assert_eq!(verify(&app).await["ok"], true, "the gap SE7 closes");
    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(v["ok"], false, "{v:#}");
    assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_truncated".to_owned())]);
    let p = &v["problems"][0];
    assert_eq!(p["seq"], 6);
    assert_eq!(p["chain_id"], of_chain(&cps, "ws")["chain"]);
    assert!(p["reason"].as_str().unwrap().contains("removed from its end"), "{p}");
    assert_eq!(v["first_broken"]["chain"], "ws");
    assert_eq!(v["first_broken"]["seq"], 6);
    // new events written over the cut make the chain as long again, but not the same
    app.project(&ann, "ws", "x").await;
    app.project(&ann, "ws", "y").await;
    app.project(&ann, "ws", "z").await;
    assert_eq!(verify(&app).await["ok"], true);
    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_rewritten".to_owned())], "{v:#}");
}

/// Append `n` renames to ws's chain, through the store in one transaction.
async fn rename_ws_times(app: &TestApp, n: usize) {
    use canopy_domain::events::{Named, WorkspaceRenamed};
    let system = canopy_domain::history::Initiator::system("test");
    let mut tx = app.store.write().await.unwrap();
    let ws = tx.workspace_by_identifier("ws").await.unwrap().unwrap();
    for i in 0..n {
        let renamed = WorkspaceRenamed {
            old: Named { display_name: format!("name {i}") },
            new: Named { display_name: format!("name {}", i + 1) },
        };
        tx.record(Some(ws.id), canopy_testkit::START, &system, renamed.into()).unwrap();
    }
    tx.commit().await.unwrap();
}

/// A chain is verified a page of events at a time (memory does not grow
/// with its length): links, the head and checkpoints hold across pages, and
/// a fault in a later page is found at its place.
async fn se7_a_chain_longer_than_a_page_is_verified_across_pages(app: TestApp) {
    busy_workspace(&app).await;
    rename_ws_times(&app, 1_500).await;
    let cps = checkpoints(&app).await;
    let at = of_chain(&cps, "ws")["seq"].as_i64().unwrap();
    assert_eq!(at, 1_506);
    rename_ws_times(&app, 1_000).await;
    let statements = canopy_testkit::plans::Statements::of_server(app.addr);
    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(v["events_checked"].as_i64().unwrap() >= 2_506, "{v:#}");
    // no chain is read whole, only in pages (distinct statements recorded)
    let reads: Vec<String> =
        statements.reads().into_iter().filter(|s| s.contains("FROM history_events WHERE chain")).collect();
    assert!(!reads.is_empty() && reads.iter().all(|s| s.contains("LIMIT")), "{reads:#?}");
    // a rewritten event in the second page: its link breaks there, and the
    // checkpoint that points at it no longer holds
    app.sql(&format!("UPDATE history_events SET hash = '{}' WHERE chain = {WS_CHAIN} AND seq = {at}", "f".repeat(64)))
        .await;
    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(
        codes(&v),
        [("ws".to_owned(), "broken_link".to_owned()), ("ws".to_owned(), "checkpoint_rewritten".to_owned())],
        "{v:#}"
    );
    assert_eq!(v["first_broken"]["seq"], at);
}

async fn se7_deleting_a_workspace_chain_is_detected_even_without_checkpoints(app: TestApp) {
    let ann = busy_workspace(&app).await;
    // a deleted workspace keeps its history, which stays intact
    app.workspace(&ann, "old").await;
    app.delete("/api/v1/workspaces/old", &ann).await.expect(204);
    let cps = checkpoints(&app).await;
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 3, "the deleted workspace's chain too");
    assert_eq!(verify(&app).await["ok"], true);
    assert_eq!(verify_with(&app, &cps["checkpoints"]).await["ok"], true);

    // the chain of a workspace that exists: its events and its head
    app.sql(&format!("DELETE FROM history_events WHERE chain = {WS_CHAIN}")).await;
    app.sql(&format!("DELETE FROM history_chains WHERE chain = {WS_CHAIN}")).await;
    let v = verify(&app).await;
    assert_eq!(v["ok"], false, "{v:#}");
    assert_eq!(codes(&v), [("ws".to_owned(), "chain_missing".to_owned())]);
    assert!(v["problems"][0]["reason"].as_str().unwrap().contains("workspace ws exists"), "{v:#}");
    assert_eq!(v["first_broken"]["chain"], "ws");
    // its checkpoint says so too
    let v = verify_with(&app, &cps["checkpoints"]).await;
    assert_eq!(
        codes(&v),
        [("ws".to_owned(), "chain_missing".to_owned()), ("ws".to_owned(), "checkpoint_chain_gone".to_owned())]
    );

    // the chain of the deleted workspace: the installation history recorded its creation
    let old = of_chain(&cps, "old")["chain"].as_str().unwrap().to_owned();
    app.sql(&format!("DELETE FROM history_events WHERE chain = '{old}'")).await;
    app.sql(&format!("DELETE FROM history_chains WHERE chain = '{old}'")).await;
    let v = verify(&app).await;
    assert_eq!(
        codes(&v),
        [("ws".to_owned(), "chain_missing".to_owned()), ("old".to_owned(), "chain_missing".to_owned())],
        "{v:#}"
    );
    assert!(v["problems"][1]["reason"].as_str().unwrap().contains("installation history records"), "{v:#}");
}

async fn se7_modified_or_foreign_checkpoints_are_refused(app: TestApp) {
    busy_workspace(&app).await;
    let cps = checkpoints(&app).await;
    let ws = of_chain(&cps, "ws").clone();
    let hash5 = app.sql_strings(&format!("SELECT hash FROM history_events WHERE chain = {WS_CHAIN} AND seq = 5")).await;
    let mut changed = Vec::new();
    // an earlier seq with that event's real hash: the chain contains it, the signature does not
    let mut c = ws.clone();
    c["seq"] = json!(5);
    c["hash"] = json!(hash5[0]);
    changed.push(c);
    let mut c = ws.clone();
    c["hash"] = json!("a".repeat(64));
    changed.push(c);
    let mut c = ws.clone();
    c["at"] = json!("2030-01-01T00:00:00Z");
    changed.push(c);
    for c in &changed {
        let v = verify_with(&app, &json!([c])).await;
        assert_eq!(v["ok"], false, "{c}");
        assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_bad_signature".to_owned())], "{v:#}");
        assert!(v["problems"][0]["reason"].as_str().unwrap().contains("signature"), "{v:#}");
    }
    // signed by another key, over the very same head
    let other = canopy_testkit::new_history_key();
    let head = canopy_domain::checkpoint::ChainHead {
        chain: ws["chain"].as_str().unwrap().to_owned(),
        label: "ws".into(),
        seq: 6,
        hash: ws["hash"].as_str().unwrap().to_owned(),
    };
    let foreign = other.sign(&head, canopy_testkit::START);
    let v = verify_with(&app, &json!([foreign])).await;
    assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_other_key".to_owned())], "{v:#}");
    assert!(v["problems"][0]["reason"].as_str().unwrap().contains(&other.key_id()), "{v:#}");
    // another key that claims this installation's key id
    let claimed = Checkpoint { key_id: app.history_key.key_id(), ..foreign };
    let v = verify_with(&app, &json!([claimed])).await;
    assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_bad_signature".to_owned())], "{v:#}");
    // the genuine one next to the forged ones still holds; the answer names only the forged
    let v = verify_with(&app, &json!([ws, changed[1]])).await;
    assert_eq!(codes(&v), [("ws".to_owned(), "checkpoint_bad_signature".to_owned())], "{v:#}");

    // what cannot be a checkpoint at all is a 422 naming the field
    let url = "/api/v1/admin/history/verify";
    let admin = &app.admin_token;
    for (field, value) in [
        ("hash", json!("XYZ")),
        ("seq", json!(-1)),
        ("key_id", json!("k")),
        ("signature", json!("AAAA")),
        ("chain", json!("")),
        ("label", json!("x".repeat(101))),
    ] {
        let mut c = ws.clone();
        c[field] = value;
        app.post(url, admin, json!({"checkpoints": [ws, c]}))
            .await
            .expect_problem(422, Some(&format!("checkpoints[1].{field}")));
    }
    let mut c = ws.clone();
    c["at"] = json!("yesterday");
    app.post(url, admin, json!({"checkpoints": [c]})).await.expect_problem(422, Some("checkpoints[0].at"));
    let mut c = ws.clone();
    c["extra"] = json!(1);
    app.post(url, admin, json!({"checkpoints": [c]})).await.expect_problem(422, None);
    app.post(url, admin, json!({})).await.expect_problem(422, Some("checkpoints"));
    // at most 10,000 at once
    let many = vec![ws.clone(); canopy_api_types::MAX_CHECKPOINTS + 1];
    app.post(url, admin, json!({"checkpoints": many})).await.expect_problem(422, Some("checkpoints"));
    let many = vec![ws.clone(); canopy_api_types::MAX_CHECKPOINTS];
    let v = verify_with(&app, &json!(many)).await;
    assert_eq!((v["ok"].clone(), v["checkpoints_checked"].clone()), (json!(true), json!(10_000)));
}

async fn se7_the_installation_history_records_every_chain_created(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    let id = app.sql_strings(&format!("SELECT {WS_CHAIN}")).await;
    let h = app.get("/api/v1/admin/history?kind=history_chain_created", &app.admin_token).await.expect(200).body;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{h:#}");
    assert_eq!(items[0]["details"], json!({"workspace": "ws", "chain": id[0]}));
    assert_eq!(items[0]["initiator"], json!({"kind": "user", "name": "ann"}));
    // a chain made before creations were recorded (an older installation) is recorded once, later
    app.sql(&format!(
        "INSERT INTO history_chains (chain, label, last_seq, last_hash) VALUES ('legacy-chain', 'legacy', 0, '{}')",
        canopy_domain::history::GENESIS_HASH
    ))
    .await;
    assert_eq!(verify(&app).await["ok"], true);
    assert_eq!(app.store.record_unrecorded_chains(canopy_testkit::START).await.unwrap(), 1);
    assert_eq!(app.store.record_unrecorded_chains(canopy_testkit::START).await.unwrap(), 0);
    let h = app.get("/api/v1/admin/history?kind=history_chain_created", &app.admin_token).await.expect(200).body;
    assert_eq!(
        h["items"][0]["details"],
        json!({"workspace": "legacy", "chain": "legacy-chain", "recorded_later": true})
    );
    assert_eq!(h["items"][0]["initiator"], json!({"kind": "system", "name": "history"}));
    assert_eq!(verify(&app).await["ok"], true);
    // and from then on its deletion shows
    app.sql("DELETE FROM history_chains WHERE chain = 'legacy-chain'").await;
    assert_eq!(codes(&verify(&app).await), [("legacy".to_owned(), "chain_missing".to_owned())]);
}

/// A webhook receiver on 127.0.0.1:0 that keeps every body and answers `status`.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                (axum::http::StatusCode::from_u16(status).unwrap(), "x".repeat(100_000))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn se7_checkpoints_are_exported_to_a_file_and_a_webhook(app: TestApp) {
    let ann = busy_workspace(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoints.jsonl");
    let (url, got) = receiver(200).await;
    let export = CheckpointExport { file: Some(file.clone()), webhook: Some(Webhook::new(&url).unwrap()) };
    let sent = export_once(&app.store, app.clock.as_ref(), &app.history_key, &export).await.unwrap();
    assert_eq!(sent.len(), 2);
    app.project(&ann, "ws", "e").await;
    app.clock.advance(time::Duration::hours(1));
    export_once(&app.store, app.clock.as_ref(), &app.history_key, &export).await.unwrap();
    // the file: one JSON line per checkpoint, appended each round
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let ws: Vec<i64> = lines.iter().filter(|l| l["label"] == "ws").map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(ws, [6, 7]);
    assert_eq!(lines[3]["at"], "2026-11-23T11:00:00Z");
    // the webhook: each round's checkpoints with the public key
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["public_key"], app.history_key.public_key().to_base64());
    assert_eq!(bodies[0]["key_id"], app.history_key.key_id());
    assert_eq!(bodies[1]["checkpoints"].as_array().unwrap().len(), 2);
    // what was exported proves the history later, as the API's checkpoints do
    let v = verify_with(&app, &json!(lines)).await;
    assert_eq!((v["ok"].clone(), v["checkpoints_checked"].clone()), (json!(true), json!(4)), "{v:#}");
    truncate_ws(&app, 5).await;
    let v = verify_with(&app, &json!(lines)).await;
    assert_eq!(codes(&v), vec![("ws".to_owned(), "checkpoint_truncated".to_owned()); 2], "{v:#}");

    // a webhook that fails: the error says how (its answer read no further
    // than a small cap), and the file still got this round's checkpoints
    let (failing, _) = receiver(500).await;
    let export = CheckpointExport { file: Some(file.clone()), webhook: Some(Webhook::new(&failing).unwrap()) };
    let e = export_once(&app.store, app.clock.as_ref(), &app.history_key, &export).await.unwrap_err().to_string();
    assert!(e.contains("answered 500"), "{e}");
    assert!(e.len() < 2000, "the answer is cut: {} bytes", e.len());
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 6);
    // a webhook nobody listens at, and a file that cannot be written: both named, neither panics
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let export = CheckpointExport {
        file: Some(dir.path().join("no-such-dir").join("cps.jsonl")),
        webhook: Some(Webhook::new(&format!("http://{closed}/hook")).unwrap()),
    };
    let e = export_once(&app.store, app.clock.as_ref(), &app.history_key, &export).await.unwrap_err().to_string();
    assert!(e.contains("checkpoint file") && e.contains("webhook"), "{e}");
    assert!(Webhook::new("ftp://example.org/x").is_err());
    assert!(Webhook::new("not a url").is_err());
}

canopy_testkit::backend_tests! {
    se7_untouched_history_verifies_with_its_checkpoints,
    se7_truncating_a_chain_and_moving_its_head_back_is_detected_given_an_earlier_checkpoint,
    se7_a_chain_longer_than_a_page_is_verified_across_pages,
    se7_deleting_a_workspace_chain_is_detected_even_without_checkpoints,
    se7_modified_or_foreign_checkpoints_are_refused,
    se7_the_installation_history_records_every_chain_created,
    se7_checkpoints_are_exported_to_a_file_and_a_webhook,
}
