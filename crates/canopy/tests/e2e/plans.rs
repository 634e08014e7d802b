//! The hot paths' statements use an index on both backends (issue 13): every
//! statement the server runs to answer the reads a person makes all day is
//! recorded and explained, and none may walk a table that grows with the
//! installation.

use canopy_domain::clock::Clock;
use canopy_testkit::TestApp;
use canopy_testkit::plans::{Statements, query_plan};
use serde_json::json;
use tracing::Instrument;

/// Tables whose size an admin sets by hand (roles, platforms, settings):
/// a walk over them costs the same whatever the installation holds.
const SMALL_TABLES: &[&str] =
    &["installation_settings", "project_roles", "platforms", "landing_zones", "tag_definitions", "history_chains"];

/// What in a plan walks a large table (one of `tables`), if anything: a
/// scan of the whole table, or on PostgreSQL a filter that asks whether a
/// bound value is NULL (`$2 IS NULL OR id > $2`). PostgreSQL runs a
/// prepared statement on its generic plan once that looks no dearer than
/// planning each run, and there such a condition cannot start an index
/// range: the scan walks every entry before the cursor.
fn walks(plan: &[String], postgres: bool, tables: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    if postgres {
        let mut scanning = "";
        for line in plan {
            // "Index Scan [Backward] using INDEX on TABLE ...", "Seq Scan on TABLE ..."
            if let Some(rest) = line.split(" Scan ").nth(1) {
                let mut words = rest.split_whitespace().skip_while(|w| *w != "on");
                scanning = words.nth(1).unwrap_or("");
            }
            let large = tables.iter().any(|t| t == scanning) && !SMALL_TABLES.contains(&scanning);
            if large && line.contains("Filter:") && asks_if_bound_value_is_null(line) {
                found.push(format!("{scanning}: {}", line.trim()));
            }
        }
    }
    found.extend(plan.iter().filter_map(|line| {
        let table = if postgres {
            line.split("Seq Scan on ").nth(1)?.split_whitespace().next()?
        } else {
            let rest = line.trim().strip_prefix("SCAN ")?;
            // a CTE, a subquery or a constant row, not a table
            if rest.starts_with('(') || rest.starts_with("CONSTANT") {
                return None;
            }
            rest.split_whitespace().next()?
        };
        // a scan of a subquery's rows is no walk over a table
        let is_table = tables.iter().any(|t| t == table);
        (is_table && !SMALL_TABLES.contains(&table)).then(|| line.trim().to_owned())
    }));
    found
}

/// Whether a plan line tests a bound value (`$N`) for NULL.
fn asks_if_bound_value_is_null(line: &str) -> bool {
    line.match_indices("($").any(|(i, _)| {
        let rest = &line[i + 2..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(" IS NULL)")
    })
}

async fn if1_the_hot_paths_read_through_indexes(app: TestApp) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.project(&ann, "ws", "web").await;
    let ws = "/api/v1/workspaces/ws";
    app.post(&format!("{ws}/projects/web/bindings"), &ann, json!({"user": "bob", "role": "project_user"}))
        .await
        .expect(201);
    let mut key =
        app.post("/api/v1/api-keys", &ann, json!({"name": "ci", "workspace": "ws", "role": "workspace_manager"})).await;
    let key = key.body["token"].take();
    let key = key.as_str().unwrap_or_default().to_owned();

    let statements = Statements::of_server(app.addr);
    let page = app.get(&format!("{ws}/projects/web/bindings?limit=1"), &ann).await.expect(200);
    if let Some(cursor) = page.body["next_cursor"].as_str() {
        app.get(&format!("{ws}/projects/web/bindings?limit=1&cursor={cursor}"), &ann).await.expect(200);
    }
    let history = app.get(&format!("{ws}/history?limit=2"), &ann).await.expect(200);
    let cursor = history.body["next_cursor"].as_str().unwrap().to_owned();
    app.get(&format!("{ws}/history?limit=2&cursor={cursor}"), &ann).await.expect(200);
    for path in [
        format!("{ws}/members?limit=50"),
        format!("{ws}/projects?limit=50"),
        format!("{ws}/projects/web"),
        format!("{ws}/projects/web/tenants"),
        format!("{ws}/expired-access"),
        format!("{ws}/requests"),
        "/api/v1/me".to_owned(),
        "/api/v1/workspaces".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/api-keys?workspace=ws".to_owned(),
    ] {
        app.get(&path, &ann).await.expect(200);
    }
    app.get("/api/v1/me", &bob).await.expect(200);
    app.get("/api/v1/expired-access", &app.admin_token).await.expect(200);
    if !key.is_empty() {
        app.get(&format!("{ws}/members?limit=50"), &key).await.expect(200);
    }
    let reads = statements.reads();
    assert!(reads.len() >= 10, "the requests ran their statements: {reads:#?}");
    assert_no_walks(&app, &reads).await;
}

/// Explain each statement on the app's database: none may walk a table
/// that grows with the installation.
async fn assert_no_walks(app: &TestApp, reads: &[String]) {
    let postgres = !app.db_url.starts_with("sqlite:");
    let tables = canopy_testkit::sql_strings(
        &app.db_url,
        if postgres {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        },
    )
    .await;
    let mut found = Vec::new();
    for sql in reads {
        match query_plan(&app.db_url, sql).await {
            Ok(plan) => {
                let bad = walks(&plan, postgres, &tables);
                if !bad.is_empty() {
                    found.push(format!("{sql}\n  walks: {bad:?}\n  plan: {plan:#?}"));
                }
            }
            Err(e) => found.push(format!("{sql}\n  cannot be explained: {e}")),
        }
    }
    assert!(found.is_empty(), "statements on the hot paths that walk a table:\n\n{}", found.join("\n\n"));
}

/// The steps the engine and the scheduler take all day read through
/// indexes too (their cost must follow what is due, not the installation's
/// size): replication passes (claims, a tenant's desired state, settling
/// the run), the heartbeat, the full reconcile's marking, the expiry job
/// and its next instant, the soon-expiring notices, lapsed requests and the
/// payment job.
async fn if1_the_engines_steps_read_through_indexes(app: TestApp) {
    let admin = app.admin_token.clone();
    crate::urgent::setup(&app, &["ann", "bob"]).await;
    app.post("/api/v1/groups", &admin, json!({"identifier": "devs", "display_name": "Devs"})).await.expect(201);
    app.post("/api/v1/groups/devs/members", &admin, json!({"user": "bob"})).await.expect(201);
    app.post("/api/v1/workspaces/w/members", &admin, json!({"group": "devs", "role": "workspace_member"}))
        .await
        .expect(201);
    crate::urgent::project(&app, "web", &["ann"]).await;
    let soon = (app.clock.now() + time::Duration::days(2)).format(&time::format_description::well_known::Rfc3339);
    let bindings = "/api/v1/workspaces/w/projects/web/bindings";
    app.post(bindings, &admin, json!({"group": "devs", "role": "project_user", "expires_at": soon.unwrap()}))
        .await
        .expect(201);
    let gate = crate::urgent::Gate::new();
    let replicator = crate::urgent::replicator(&app, &gate, 4, 4);

    let statements = Statements::of_server(app.addr);
    let (store, clock) = (&app.store, &*app.clock);
    async {
        crate::urgent::converge(&app, &gate, 10).await;
        replicator.heartbeat().await.unwrap();
        replicator.schedule_reconcile().await.unwrap();
        crate::urgent::converge(&app, &gate, 10).await;
        canopy_engine::expiry::notify_soon(store, clock).await.unwrap();
        canopy_engine::expiry::until_next(store, clock).await.unwrap();
        app.clock.advance(time::Duration::days(3));
        assert_eq!(canopy_engine::expiry::end_due(store, clock).await.unwrap(), 1);
        canopy_engine::expiry::void_lapsed(store, clock).await.unwrap();
        canopy_engine::payments::substitute_expired(store, clock).await.unwrap();
        crate::urgent::converge(&app, &gate, 10).await;
    }
    .instrument(statements.scope())
    .await;
    let mut reads = statements.reads();
    assert!(reads.len() >= 10, "the steps ran their statements: {reads:#?}");
    assert!(reads.iter().any(|r| r.contains("tenant_work")), "a claim was recorded: {reads:#?}");
    // The one walk allowed: the reconcile sizes its batch by the number of
    // tenants (every tenant comes up within the period), counted once per
    // scheduler tick (10 s) on one node, from an index alone.
    reads.retain(|r| r != "SELECT COUNT(*) AS n FROM tenants");
    assert_no_walks(&app, &reads).await;
}

/// While it works, each node asks at every poll whether urgent work waits
/// (AD4: an emergency revocation goes before the backlog). That look must
/// read the urgent tenants only, through `tenant_work_due`, not every
/// tenant no run holds (the backlog, which a full reconcile makes as large
/// as the installation).
async fn ad4_the_look_for_urgent_work_reads_only_urgent_tenants(app: TestApp) {
    let plan = query_plan(&app.db_url, canopy_store::URGENT_WAITING).await.unwrap();
    assert!(plan.iter().any(|l| l.contains("tenant_work_due")), "{plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("tenant_work_lease")), "{plan:#?}");
}

/// A binding is written to the indexes its reads find it through, and to
/// no other: a user's binding is not in the group index, a binding that
/// never expires not in the expiration indexes (each write of an index is
/// pages to the WAL). The subject indexes lead with the subject, so they
/// check a binding's uniqueness and list a subject's bindings at once.
async fn if1_a_binding_is_indexed_only_where_its_reads_find_it(app: TestApp) {
    let postgres = !app.db_url.starts_with("sqlite:");
    let indexes = app
        .sql_strings(if postgres {
            "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE tablename = 'bindings' ORDER BY indexname"
        } else {
            "SELECT name || ' ' || COALESCE(sql, '') FROM sqlite_master \
             WHERE type = 'index' AND tbl_name = 'bindings' ORDER BY name"
        })
        .await;
    let mut found: Vec<(String, bool)> = indexes
        .iter()
        .filter_map(|line| {
            let (name, definition) = line.split_once(' ')?;
            // the primary key's own index (SQLite names it, PostgreSQL keeps the rebuilt table's name)
            if name.starts_with("sqlite_autoindex_bindings") || name.ends_with("_pkey") {
                return None;
            }
            Some((name.to_owned(), definition.contains(" WHERE ")))
        })
        .collect();
    found.sort();
    let partial = |name: &str| (name.to_owned(), true);
    assert_eq!(
        found,
        vec![
            partial("bindings_due"),
            partial("bindings_expiry"),
            partial("bindings_group"),
            ("bindings_page".to_owned(), false),
            partial("bindings_user"),
            partial("bindings_workspace_expiry"),
        ],
        "{indexes:#?}"
    );
    assert!(indexes.iter().any(|l| l.starts_with("bindings_user ") && l.contains("UNIQUE")), "{indexes:#?}");
    assert!(indexes.iter().any(|l| l.starts_with("bindings_group ") && l.contains("UNIQUE")), "{indexes:#?}");
}

/// The expiry job (AC7), the instant it next wakes for and the
/// soon-expiring notices read through the indexes of expiring bindings,
/// which leave out every binding that never expires.
async fn ac7_the_expiry_job_reads_only_expiring_bindings(app: TestApp) {
    for (sql, index) in [
        (canopy_store::DUE_EXPIRIES, "bindings_due"),
        (canopy_store::NEXT_EXPIRY, "bindings_due"),
        (canopy_store::DUE_EXPIRY_NOTICES, "bindings_expiry"),
    ] {
        let plan = query_plan(&app.db_url, sql).await.unwrap();
        assert!(plan.iter().any(|l| l.contains(index)), "{sql}\n{plan:#?}");
    }
}

canopy_testkit::backend_tests! {
    if1_the_hot_paths_read_through_indexes,
    if1_the_engines_steps_read_through_indexes,
    if1_a_binding_is_indexed_only_where_its_reads_find_it,
    ad4_the_look_for_urgent_work_reads_only_urgent_tenants,
    ac7_the_expiry_job_reads_only_expiring_bindings,
}
