//! The hot paths' statements use an index on both backends (issue 13): every
//! statement the server runs to answer the reads and writes a person makes
//! all day is recorded and explained, and none may walk a table that grows
//! with the installation.

use std::collections::HashMap;

use canopy_domain::clock::Clock;
use canopy_testkit::TestApp;
use canopy_testkit::plans::{Statements, query_plan};
use serde_json::json;
use tracing::Instrument;

/// Tables whose size an admin sets by hand (roles, platforms, settings):
/// a walk over them costs the same whatever the installation holds.
const SMALL_TABLES: &[&str] =
    &["installation_settings", "project_roles", "platforms", "landing_zones", "tag_definitions", "history_chains"];

/// The tables of the app's database, and on PostgreSQL the indexes of each.
struct Schema {
    tables: Vec<String>,
    indexes: Vec<Index>,
}

/// An index: its table, whether it is unique, its columns in order and the
/// condition of a partial index (empty for a whole one).
struct Index {
    table: String,
    unique: bool,
    columns: Vec<String>,
    predicate: String,
}

impl Schema {
    async fn of(app: &TestApp) -> Schema {
        let postgres = !app.db_url.starts_with("sqlite:");
        let tables = app
            .sql_strings(if postgres {
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
            } else {
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            })
            .await;
        let mut indexes = Vec::new();
        if postgres {
            let defs = app
                .sql_strings("SELECT tablename || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'")
                .await;
            for def in defs {
                // "TABLE CREATE [UNIQUE] INDEX NAME ON public.TABLE USING btree (A, B) [WHERE (...)]"
                let (table, def) = def.split_once(' ').unwrap();
                let (columns, predicate) = def.split_once(" USING btree (").unwrap().1.split_once(')').unwrap();
                indexes.push(Index {
                    table: table.to_owned(),
                    unique: def.contains(" UNIQUE INDEX "),
                    // "priority DESC" is the column priority
                    columns: columns.split(", ").map(|c| c.split(' ').next().unwrap_or(c).to_owned()).collect(),
                    predicate: predicate.trim_start().trim_start_matches("WHERE ").to_owned(),
                });
            }
        }
        Schema { tables, indexes }
    }

    /// Whether an index of `table` serves a scan that binds `condition` and
    /// filters on `filter`: a unique index whose every column they compare
    /// for equality (one row at most), or an index that leads with every column compared for
    /// equality and, after them, a column the condition takes a range of,
    /// and holds what the filter asks of NULLs (as a column or in its
    /// condition). PostgreSQL's generic plan on a test's few rows picks
    /// among the indexes by size alone; with its statistics of a real
    /// installation it takes the one that reads least.
    fn serves(&self, table: &str, condition: &str, filter: &str) -> bool {
        let indexes = || self.indexes.iter().filter(|i| i.table == table);
        let mut equal: Vec<&str> = equalities(condition);
        for column in equalities(filter) {
            if !equal.contains(&column) {
                equal.push(column);
            }
        }
        if indexes().any(|i| i.unique && i.columns.iter().all(|c| equal.contains(&c.as_str()))) {
            return true;
        }
        let ranged: Vec<&str> = terms(condition)
            .filter_map(|t| t.split_once([' ']).filter(|(_, rest)| rest.starts_with(['<', '>'])).map(|(c, _)| c))
            .collect();
        let nulls: Vec<(&str, &str)> = terms(filter)
            .filter_map(|t| t.split_once(" IS ").filter(|(_, rest)| rest.ends_with("NULL")).map(|(c, _)| (c, t)))
            .collect();
        indexes().any(|i| {
            let leads = equal.iter().all(|c| i.columns.iter().take(equal.len()).any(|ic| ic == c));
            let then_range = !equal.is_empty() || i.columns.first().is_some_and(|c| ranged.contains(&c.as_str()));
            let holds_nulls = nulls.iter().all(|(c, t)| i.columns.iter().any(|ic| ic == c) || i.predicate.contains(t));
            leads && then_range && holds_nulls
        })
    }
}

/// The terms of a condition, without their parentheses:
/// `((a = $1) AND (b IS NULL))` gives `a = $1`, `b IS NULL`.
fn terms(condition: &str) -> impl Iterator<Item = &str> {
    condition.split(" AND ").map(|t| t.trim_start_matches('(').trim_end_matches(')'))
}

/// What in a plan walks a large table, if anything: a scan of the whole
/// table or of a whole index, or a range of an index whose rows a filter
/// then thins out when no index leads with what the statement looks for
/// (`id > $1` filtered on `workspace_id = $2` reads the keys of every
/// workspace; see [`Schema::serves`]). `sql` names the tables: a plan names
/// a table by its alias when it has one (`SCAN b`).
///
/// SQLite's plans do not show filters: there a range-only search
/// (`SEARCH k USING INDEX i (id>?)`) of a table the statement also compares
/// for equality on another column counts as a walk.
fn walks(plan: &[String], postgres: bool, sql: &str, schema: &Schema) -> Vec<String> {
    let names = table_names(sql, &schema.tables);
    let large = |name: &str| names.get(name).is_some_and(|table| !SMALL_TABLES.contains(&table.as_str()));
    let mut found: Vec<String> = Vec::new();
    if !postgres {
        for line in plan.iter().map(|l| l.trim()) {
            // "SCAN NAME", "SCAN NAME USING [COVERING] INDEX ...": the whole
            // table or index; not a CTE, a subquery or a constant row.
            if let Some(name) = line.strip_prefix("SCAN ").and_then(|r| r.split_whitespace().next())
                && large(name)
            {
                found.push(line.to_owned());
            }
            // an index SQLite builds for one run: a walk of the table each time
            if line.contains(" AUTOMATIC ")
                && let Some(name) = line.split_whitespace().nth(1)
                && large(name)
            {
                found.push(line.to_owned());
            }
            // "SEARCH NAME USING [COVERING] INDEX I (a=? AND b>?)"
            if let Some(rest) = line.strip_prefix("SEARCH ")
                && let Some(name) = rest.split_whitespace().next()
                && large(name)
                && let Some(constraint) = rest.split('(').nth(1)
            {
                let terms: Vec<&str> = constraint.trim_end_matches(')').split(" AND ").collect();
                let equality = terms.iter().any(|t| t.contains("=?") && !t.contains(">=") && !t.contains("<="));
                let ranged: Vec<&str> = terms.iter().filter_map(|t| t.split(['<', '>', '=']).next()).collect();
                if !equality && compares_for_equality(sql, name, &names, &ranged) {
                    found.push(line.to_owned());
                }
            }
        }
        return found;
    }
    // A node is its line (the first, or one with "->") and the lines
    // under it up to the next node.
    let mut nodes: Vec<Vec<&str>> = Vec::new();
    for line in plan {
        if nodes.is_empty() || line.contains("->") {
            nodes.push(Vec::new());
        }
        if let Some(node) = nodes.last_mut() {
            node.push(line);
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let head = node[0];
        // "Seq Scan on TABLE ...", "Index [Only] Scan [Backward] using INDEX on TABLE [ALIAS] ...",
        // "Bitmap Heap Scan on TABLE [ALIAS] ..."
        let Some(rest) = head.split(" Scan ").nth(1) else { continue };
        // the relation's own name: PostgreSQL renames an alias used twice
        // (`w_1`), which the statement's text does not know
        let Some(name) = rest.split_whitespace().skip_while(|w| *w != "on").nth(1) else { continue };
        if !schema.tables.iter().any(|t| t == name) || SMALL_TABLES.contains(&name) {
            continue;
        }
        let condition = node.iter().find_map(|l| {
            let l = l.trim();
            l.strip_prefix("Index Cond: ").or_else(|| l.strip_prefix("Recheck Cond: "))
        });
        let filter = node.iter().find_map(|l| l.trim().strip_prefix("Filter: "));
        if head.contains("Seq Scan") {
            found.push(head.trim().to_owned());
        } else if condition.is_none() && (filter.is_some() || !limited(&nodes, i)) {
            found.push(format!("{name}: the whole index: {}", head.trim()));
        } else if let (Some(filter), Some(condition)) = (filter, condition)
            && !schema.serves(name, condition, filter)
        {
            found.push(format!("{name}: a range of {condition} filtered on {filter}, and no index serves both"));
        }
    }
    found
}

/// The columns a condition compares for equality: `(a = $1)`,
/// `((a = $1) AND (b > $2))`, `(role = ANY ('{x,y}'::text[]))`.
fn equalities(condition: &str) -> Vec<&str> {
    // `(a = $1) OR (b = $1)` binds neither
    terms(condition).filter(|t| !t.contains(" OR ")).filter_map(|term| Some(term.split_once(" = ")?.0)).collect()
}

/// Whether `sql` compares a column of the table it reads as `name` for
/// equality with a bound value or a constant (`k.workspace_id = $2`, or
/// `workspace_id = $2` when it reads one table), other than the `ranged`
/// ones.
fn compares_for_equality(sql: &str, name: &str, names: &HashMap<String, String>, ranged: &[&str]) -> bool {
    let sql = sql.to_ascii_lowercase();
    let one_table = names.values().collect::<std::collections::HashSet<_>>().len() == 1;
    let Some((_, condition)) = sql.split_once(" where ") else { return false };
    condition.split(" and ").any(|term| {
        let Some((left, right)) = term.split_once(" = ") else { return false };
        // a bound value or a constant, not another table's column (a join)
        if !right.trim_start().starts_with(|c: char| c == '$' || c == '\'' || c.is_ascii_digit()) {
            return false;
        }
        let left = left.trim().trim_start_matches('(');
        // a column, not the end of another clause (`SET a = $1`)
        if left.contains(char::is_whitespace) {
            return false;
        }
        let column = match left.split_once('.') {
            Some((qualifier, column)) if qualifier == name => column,
            None if one_table => left,
            _ => return false,
        };
        !ranged.contains(&column)
    })
}

/// Whether the index scan at `nodes[i]` stops early: a `Limit` takes its
/// rows directly, so it reads no more entries than the limit.
fn limited(nodes: &[Vec<&str>], i: usize) -> bool {
    let depth = |node: &[&str]| node[0].find("->").unwrap_or(0);
    let parent = nodes[..i].iter().rev().find(|n| depth(n) < depth(&nodes[i]));
    // a Limit whose node also runs a sub-plan may be the sub-plan's parent
    // in the text, not the scan's limit
    parent.is_some_and(|p| {
        p[0].trim_start().trim_start_matches("->").trim_start().starts_with("Limit")
            && !p.iter().any(|l| l.contains("InitPlan") || l.contains("SubPlan"))
    })
}

/// The names under which `sql` reads each of `tables`: the table's own
/// name and the alias it gives it (`FROM bindings b`, `JOIN accounts AS a`).
fn table_names(sql: &str, tables: &[String]) -> HashMap<String, String> {
    const KEYWORDS: &[&str] = &[
        "where",
        "join",
        "left",
        "right",
        "inner",
        "outer",
        "cross",
        "full",
        "natural",
        "on",
        "using",
        "order",
        "group",
        "having",
        "limit",
        "offset",
        "union",
        "except",
        "intersect",
        "window",
        "set",
        "values",
        "returning",
        "select",
        "from",
        "and",
        "or",
        "not",
        "as",
        "default",
        "do",
        "indexed",
    ];
    // identifiers and single punctuation marks, lower-cased
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in sql.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c.to_ascii_lowercase());
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    let identifier = |t: &str| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && !KEYWORDS.contains(&t);
    let mut names = HashMap::new();
    for (i, token) in tokens.iter().enumerate() {
        // a table, not a column of that name (`b.tenants`, `tenants.id`)
        let qualified = i > 0 && tokens[i - 1] == "." || tokens.get(i + 1).is_some_and(|t| t == ".");
        if qualified || !tables.contains(token) {
            continue;
        }
        names.insert(token.clone(), token.clone());
        let next = tokens.get(i + 1).map(String::as_str).unwrap_or("");
        let alias = if next == "as" { tokens.get(i + 2).map(String::as_str).unwrap_or("") } else { next };
        if identifier(alias) {
            names.insert(alias.to_owned(), token.clone());
        }
    }
    names
}

async fn if1_the_hot_paths_read_and_write_through_indexes(app: TestApp) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    app.user("cy").await;
    app.workspace(&ann, "ws").await;
    app.invite(&ann, "ws", "bob", "workspace_member").await;
    app.invite(&ann, "ws", "cy", "workspace_member").await;
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
    let event = history.body["items"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("{ws}/history/{event}"),
        format!("{ws}/history?initiator=ann&limit=2"),
        format!("{ws}/history?kind=binding_created&limit=2"),
        format!("{ws}/history?since=2020-01-01T00:00:00Z&until=2099-01-01T00:00:00Z&limit=2"),
        ws.to_owned(),
        format!("{ws}/search?q=bo"),
        format!("{ws}/payment-methods"),
        format!("{ws}/members?limit=50"),
        format!("{ws}/projects?limit=50"),
        format!("{ws}/projects/web"),
        format!("{ws}/projects/web/tenants"),
        format!("{ws}/expired-access"),
        format!("{ws}/requests"),
        format!("{ws}/requests?state=all"),
        "/api/v1/me".to_owned(),
        "/api/v1/workspaces".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/api-keys?workspace=ws".to_owned(),
    ] {
        app.get(&path, &ann).await.expect(200);
    }
    app.get("/api/v1/me", &bob).await.expect(200);
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "devs", "display_name": "Devs"}))
        .await
        .expect(201);
    app.post("/api/v1/groups/devs/members", &app.admin_token, json!({"user": "bob"})).await.expect(201);
    for path in [
        "/api/v1/users?limit=50",
        "/api/v1/users?q=bo",
        "/api/v1/users/bob",
        "/api/v1/groups",
        "/api/v1/groups/devs/members",
        "/api/v1/admin/workspaces",
        "/api/v1/admin/history?limit=2",
        "/api/v1/expired-access",
        "/api/v1/admin/requests",
        "/api/v1/admin/requests?state=all",
        "/api/v1/admin/requests?workspace=ws&state=all",
    ] {
        app.get(path, &app.admin_token).await.expect(200);
    }
    if !key.is_empty() {
        app.get(&format!("{ws}/members?limit=50"), &key).await.expect(200);
    }
    // the writes made all day: a binding added, changed and removed, a
    // member's role changed and the member removed (which ends their bindings)
    let bindings = format!("{ws}/projects/web/bindings");
    let added = app.post(&bindings, &ann, json!({"user": "cy", "role": "project_user"})).await.expect(201);
    let id = added.body["id"].as_str().unwrap().to_owned();
    let until = json!({"role": "project_admin", "expires_at": "2027-12-01T00:00:00Z"});
    app.patch(&format!("{bindings}/{id}"), &ann, until).await.expect(200);
    app.delete(&format!("{bindings}/{id}"), &ann).await.expect(204);
    app.patch(&format!("{ws}/members/user:bob"), &ann, json!({"role": "workspace_manager"})).await.expect(200);
    app.delete(&format!("{ws}/members/user:bob"), &ann).await.expect(204);
    let statements = statements.all();
    assert!(statements.iter().any(|s| s.starts_with("UPDATE")), "the writes ran their statements: {statements:#?}");
    assert_no_walks(&app, &statements).await;
}

/// Explain each statement on the app's database: none may walk a table
/// that grows with the installation.
async fn assert_no_walks(app: &TestApp, statements: &[String]) {
    let postgres = !app.db_url.starts_with("sqlite:");
    let schema = Schema::of(app).await;
    let mut found = Vec::new();
    for sql in statements {
        match query_plan(&app.db_url, sql).await {
            Ok(plan) => {
                let bad = walks(&plan, postgres, sql, &schema);
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
    let mut reads = statements.all();
    assert!(reads.len() >= 10, "the steps ran their statements: {reads:#?}");
    assert!(reads.iter().any(|r| r.contains("UPDATE tenant_work")), "a claim was recorded: {reads:#?}");
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
            partial("bindings_notice"),
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
        (canopy_store::DUE_EXPIRY_NOTICES, "bindings_notice"),
    ] {
        let plan = query_plan(&app.db_url, sql).await.unwrap();
        assert!(plan.iter().any(|l| l.contains(index)), "{sql}\n{plan:#?}");
    }
}

canopy_testkit::backend_tests! {
    if1_the_hot_paths_read_and_write_through_indexes,
    if1_the_engines_steps_read_through_indexes,
    if1_a_binding_is_indexed_only_where_its_reads_find_it,
    ad4_the_look_for_urgent_work_reads_only_urgent_tenants,
    ac7_the_expiry_job_reads_only_expiring_bindings,
}
