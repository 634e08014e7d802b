//! The `canopy` command-line client, run as a real binary against a real server.
//!
//! Each test gets its own profile file and home directory; the developer's
//! `CANOPY_*` environment is removed so it cannot leak in.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use canopy_testkit::{ADMIN_PASSWORD, TestApp};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The outcome of one run of the binary.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Assert success, showing stderr when not.
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success; stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Assert this exit code, showing the output when it differs.
    #[track_caller]
    fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code; stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// The binary, set up for one test: its own home and profile, no inherited `CANOPY_*`.
struct Cli {
    dir: tempfile::TempDir,
    server: String,
}

impl Cli {
    fn new(app: &TestApp) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), server: app.base.clone() }
    }

    /// The default profile of this test (`CANOPY_PROFILE`).
    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile.json")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
        for var in [
            "CANOPY_SERVER",
            "CANOPY_TOKEN",
            "CANOPY_PROFILE",
            "CANOPY_PASSWORD",
            "CANOPY_NEW_PASSWORD",
            "XDG_CONFIG_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.dir.path().join("home"))
            .env("CANOPY_PROFILE", self.profile())
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn output(mut cmd: tokio::process::Command, stdin: Option<&str>) -> Out {
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("the canopy binary starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = child.wait_with_output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Run with the test's profile.
    async fn run(&self, args: &[&str]) -> Out {
        Self::output(self.command(args), None).await
    }

    /// Run with `stdin` as standard input.
    async fn run_stdin(&self, args: &[&str], stdin: &str) -> Out {
        Self::output(self.command(args), Some(stdin)).await
    }

    /// Run with extra environment variables.
    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Self::output(cmd, None).await
    }

    /// Run against the test server with `token`, ignoring the profile.
    async fn with_token(&self, token: &str, args: &[&str]) -> Out {
        let mut full = vec!["--server", self.server.as_str(), "--token", token];
        full.extend_from_slice(args);
        self.run(&full).await
    }

    /// `canopy login` into the test's profile.
    async fn login(&self, username: &str, password: &str) -> Out {
        self.run_stdin(
            &["login", "--server", &self.server, "--username", username, "--password-stdin"],
            &format!("{password}\n"),
        )
        .await
    }
}

async fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&tokio::fs::read(path).await.unwrap()).unwrap()
}

fn kinds(events: &Value) -> Vec<&str> {
    events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// IF3: the main workflow of a workspace, from signing in to reading the
/// history, through the client alone; the profile goes to
/// `$XDG_CONFIG_HOME/canopy/profile.json` with mode 0600.
async fn if3_cli_login_workspace_project_binding_history_walkthrough(app: TestApp) {
    let cli = Cli::new(&app);
    let config = cli.dir.path().join("config");
    let xdg = config.to_str().unwrap();
    let run = |args: &'static [&'static str]| {
        let mut cmd = cli.command(args);
        cmd.env_remove("CANOPY_PROFILE").env("XDG_CONFIG_HOME", xdg);
        Cli::output(cmd, None)
    };

    let mut login = cli.command(&["login", "--server", &app.base, "--username", "admin", "--password-stdin"]);
    login.env_remove("CANOPY_PROFILE").env("XDG_CONFIG_HOME", xdg);
    let out = Cli::output(login, Some(&format!("{ADMIN_PASSWORD}\n"))).await.ok();
    assert_eq!(out.stdout.trim(), format!("Signed in to {} as admin", app.base));
    let profile_path = config.join("canopy").join("profile.json");
    let profile = read_json(&profile_path).await;
    assert_eq!(profile["server"], app.base.as_str());
    assert_eq!(profile["username"], "admin");
    assert!(profile["token"].as_str().is_some_and(|t| !t.is_empty()), "{profile}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = tokio::fs::metadata(&profile_path).await.unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the profile holds a token: owner only");
    }

    let me = run(&["whoami"]).await.ok();
    assert!(me.stdout.lines().any(|l| l.starts_with("name:") && l.ends_with(" admin")), "{}", me.stdout);
    assert!(me.stdout.lines().any(|l| l.starts_with("installation_roles:") && l.contains("admin")), "{}", me.stdout);

    let ws = run(&["workspace", "create", "acme", "--name", "Acme Corp"]).await.ok();
    assert!(ws.lines().contains(&"identifier:   acme"), "{}", ws.stdout);
    assert!(ws.stdout.contains("workspace_owner"), "{}", ws.stdout);

    let mut create_user = cli.command(&[
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.org",
        "--first-name",
        "Alice",
        "--password-stdin",
    ]);
    create_user.env_remove("CANOPY_PROFILE").env("XDG_CONFIG_HOME", xdg);
    Cli::output(create_user, Some("password-of-alice\n")).await.ok();

    let member = run(&["member", "add", "acme", "--user", "alice", "--role", "member"]).await.ok();
    assert!(member.stdout.contains("workspace_member"), "{}", member.stdout);
    run(&["project", "create", "acme", "web", "--name", "Web shop"]).await.ok();

    let binding = run(&[
        "binding",
        "add",
        "acme",
        "web",
        "--user",
        "alice",
        "--role",
        "project_user",
        "--expires-at",
        "2027-01-31T18:00:00Z",
        "--justification",
        "on call",
        "-o",
        "json",
    ])
    .await
    .ok()
    .json();
    assert_eq!(binding["subject"], "user:alice");
    assert_eq!(binding["role"], "project_user");
    assert_eq!(binding["expires_at"], "2027-01-31T18:00:00Z");
    assert_eq!(binding["in_force"], true);
    assert_eq!(binding["justification"], "on call");

    let table = run(&["binding", "list", "acme", "web"]).await.ok();
    let lines = table.lines();
    assert_eq!(lines.len(), 2, "a header and one binding: {}", table.stdout);
    assert!(lines[0].starts_with("ID") && lines[0].contains("SUBJECT") && lines[0].contains("EXPIRES"), "{}", lines[0]);
    assert!(lines[1].starts_with(binding["id"].as_str().unwrap()) && lines[1].contains("user:alice"), "{}", lines[1]);
    assert!(lines[1].contains("2027-01-31T18:00:00Z"), "{}", lines[1]);

    // The history, newest first, in JSON.
    let events = run(&["history", "list", "acme", "-o", "json"]).await.ok().json();
    let ks = kinds(&events);
    assert_eq!(ks.first(), Some(&"binding_created"), "{ks:?}");
    for k in ["workspace_created", "member_added", "project_created", "binding_created"] {
        assert!(ks.contains(&k), "{k} missing from {ks:?}");
    }
    let seqs: Vec<i64> = events.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let created = run(&["history", "list", "acme", "--kind", "binding_created", "-o", "json"]).await.ok().json();
    assert_eq!(kinds(&created), ["binding_created"]);
    assert_eq!(created[0]["initiator"]["name"], "admin");

    // One event's details, in table output.
    let id = created[0]["id"].as_str().unwrap().to_owned();
    let mut show = cli.command(&["history", "show", "acme", &id]);
    show.env_remove("CANOPY_PROFILE").env("XDG_CONFIG_HOME", xdg);
    let shown = Cli::output(show, None).await.ok();
    assert!(shown.lines().iter().any(|l| l.starts_with("kind:") && l.ends_with("binding_created")), "{}", shown.stdout);
    assert!(shown.stdout.contains("user:alice"), "{}", shown.stdout);

    // Alice signs in with her own profile (--profile) and sees her access.
    let alice_profile = cli.dir.path().join("alice.json");
    let alice_profile = alice_profile.to_str().unwrap();
    cli.run_stdin(
        &["--profile", alice_profile, "login", "--server", &app.base, "--username", "alice", "--password-stdin"],
        "password-of-alice\n",
    )
    .await
    .ok();
    let alice = cli.run(&["--profile", alice_profile, "whoami"]).await.ok();
    assert!(
        alice.lines().iter().any(|l| l.starts_with("  acme") && l.contains("web") && l.contains("project_user")),
        "{}",
        alice.stdout
    );

    // Signing out ends the session, forgets the token but keeps the server.
    let token = read_json(&profile_path).await["token"].as_str().unwrap().to_owned();
    let out = run(&["logout"]).await.ok();
    app.get("/api/v1/me", &token).await.expect_problem(401, None);
    assert_eq!(out.stdout.trim(), format!("Signed out of {}", app.base));
    let profile = read_json(&profile_path).await;
    assert!(profile.get("token").is_none(), "{profile}");
    assert_eq!(profile["server"], app.base.as_str());
    let out = run(&["whoami"]).await.code(3);
    assert!(out.stderr.contains("not signed in: run `canopy login --server URL --username NAME`"), "{}", out.stderr);
}

/// IF3: `--output json` prints the API's JSON as it is; lists are the items
/// of every page, merged; table output is aligned; deletes print nothing in JSON.
async fn if3_cli_json_output_is_the_api_json(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    app.workspace(&admin, "acme").await;
    for p in ["p1", "p2", "p3"] {
        app.project(&admin, "acme", p).await;
    }
    let api_projects =
        app.get("/api/v1/workspaces/acme/projects?limit=500", &admin).await.expect(200).body["items"].clone();
    assert_eq!(api_projects.as_array().unwrap().len(), 3);

    // Pages of two are merged into one array equal to the API's items.
    let all = cli.with_token(&admin, &["project", "list", "acme", "--page-size", "2", "-o", "json"]).await.ok().json();
    assert_eq!(all, api_projects);
    let two = cli.with_token(&admin, &["project", "list", "acme", "--limit", "2", "-o", "json"]).await.ok().json();
    assert_eq!(two, json!([api_projects[0], api_projects[1]]));

    let ws = cli.with_token(&admin, &["workspace", "show", "acme", "-o", "json"]).await.ok().json();
    assert_eq!(ws, app.get("/api/v1/workspaces/acme", &admin).await.expect(200).body);
    let project = cli.with_token(&admin, &["project", "show", "acme", "p1", "--output", "json"]).await.ok().json();
    assert_eq!(project, app.get("/api/v1/workspaces/acme/projects/p1", &admin).await.expect(200).body);
    let me = cli.with_token(&admin, &["whoami", "-o", "json"]).await.ok().json();
    assert_eq!(me, app.get("/api/v1/me", &admin).await.expect(200).body);

    // Table output: a header, then one aligned row per project.
    let table = cli.with_token(&admin, &["project", "list", "acme"]).await.ok();
    let lines = table.lines();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    let name_col = lines[0].find("NAME").unwrap();
    assert!(lines[0].starts_with("IDENTIFIER"), "{}", lines[0]);
    for (line, p) in lines[1..].iter().zip(["p1", "p2", "p3"]) {
        assert!(line.starts_with(p), "{line}");
        assert_eq!(line.find("Project ").unwrap(), name_col, "columns are aligned: {}", table.stdout);
        assert_eq!(*line, line.trim_end(), "no trailing spaces");
    }

    // Deleting prints a message in table output, nothing in JSON output.
    app.workspace(&admin, "tmp-a").await;
    app.workspace(&admin, "tmp-b").await;
    let out = cli.with_token(&admin, &["workspace", "delete", "tmp-a", "-o", "json"]).await.ok();
    assert_eq!(out.stdout, "");
    let out = cli.with_token(&admin, &["workspace", "delete", "tmp-b"]).await.ok();
    assert_eq!(out.stdout.trim(), "Deleted workspace tmp-b");
    app.get("/api/v1/workspaces/tmp-b", &admin).await.expect(404);
}

/// IF3: failures exit non-zero with a code scripts can trust, and print the
/// server's detail and each invalid field on standard error.
async fn if3_cli_errors_exit_non_zero_with_field_message(app: TestApp) {
    let cli = Cli::new(&app);

    // Not signed in: no server, no token, no profile.
    let out = cli.run(&["workspace", "list"]).await.code(3);
    assert_eq!(out.stderr.trim(), "error: not signed in: run `canopy login --server URL --username NAME`");
    assert_eq!(out.stdout, "");

    // A wrong password is refused and writes no profile.
    let out = cli.login("admin", "not-the-password").await.code(3);
    assert!(out.stderr.contains("error: wrong username or password"), "{}", out.stderr);
    assert!(!tokio::fs::try_exists(cli.profile()).await.unwrap());
    // No password at all is a usage error.
    let out = cli.run(&["login", "--server", &app.base, "--username", "admin"]).await.code(2);
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);

    // A bad token is refused (401), with a hint to sign in again.
    let out = cli.with_token("bogus", &["whoami"]).await.code(3);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(out.stderr.contains("hint: ") && out.stderr.contains("canopy login"), "{}", out.stderr);

    cli.login("admin", ADMIN_PASSWORD).await.ok();

    // Invalid input (422): the detail, then one line per field.
    let out = cli.run(&["workspace", "create", "Bad_Id", "--name", "Bad"]).await.code(7);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.first(), Some(&"error: invalid field(s): identifier"), "{}", out.stderr);
    assert!(lines.iter().any(|l| l.starts_with("  identifier: ")), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    // Not found (404), conflict (409), forbidden (403).
    let out = cli.run(&["workspace", "show", "nope"]).await.code(5);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("nope"), "{}", out.stderr);
    cli.run(&["workspace", "create", "acme", "--name", "Acme"]).await.ok();
    let out = cli.run(&["workspace", "create", "acme", "--name", "Acme again"]).await.code(6);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    let bob = app.user("bob").await;
    let out = cli.with_token(&bob, &["workspace", "show", "acme"]).await.code(4);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);

    // Usage errors are clap's exit 2, checked before any request.
    cli.run(&["binding", "add", "acme", "web", "--role", "project_user"]).await.code(2);
    let out = cli
        .run(&["binding", "add", "acme", "web", "--user", "bob", "--role", "project_user", "--expires-at", "tomorrow"])
        .await
        .code(2);
    assert!(out.stderr.contains("RFC 3339"), "{}", out.stderr);

    // An unreachable server.
    let out = cli.run(&["--server", "http://127.0.0.1:1", "--token", "x", "whoami"]).await.code(1);
    assert!(out.stderr.starts_with("error: cannot reach the Canopy server at http://127.0.0.1:1: "), "{}", out.stderr);

    // The profile's token is not sent to another server.
    let out = cli.run(&["--server", "http://127.0.0.1:1", "whoami"]).await.code(3);
    assert!(out.stderr.contains("not signed in"), "{}", out.stderr);

    // Too many failed sign-ins on one account (429).
    app.user("carol").await;
    let other = Cli::new(&app);
    let mut codes = Vec::new();
    for _ in 0..10 {
        let out = other.login("carol", "wrong-password-of-carol").await;
        codes.push(out.code);
        if out.code == 8 {
            assert!(out.stderr.contains("too many sign-in attempts"), "{}", out.stderr);
            break;
        }
    }
    assert_eq!(codes.last(), Some(&8), "exit codes: {codes:?}");
    assert!(codes[..codes.len() - 1].iter().all(|c| *c == 3), "exit codes: {codes:?}");
}

/// WS6: changing a member's role (short role names work) and removing them
/// from the workspace, which ends their project bindings there.
async fn ws6_cli_member_remove_ends_bindings(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    app.workspace(&admin, "acme").await;
    app.user("alice").await;
    app.invite(&admin, "acme", "alice", "workspace_member").await;
    app.project(&admin, "acme", "web").await;
    app.post("/api/v1/workspaces/acme/projects/web/bindings", &admin, json!({"user": "alice", "role": "project_user"}))
        .await
        .expect(201);
    cli.login("admin", ADMIN_PASSWORD).await.ok();

    let changed = cli.run(&["member", "set-role", "acme", "alice", "manager", "-o", "json"]).await.ok().json();
    assert_eq!(changed["subject"], "user:alice");
    assert_eq!(changed["role"], "workspace_manager");
    let members = cli.run(&["member", "list", "acme", "-o", "json"]).await.ok().json();
    let alice = members.as_array().unwrap().iter().find(|m| m["subject"] == "user:alice").unwrap();
    assert_eq!(alice["role"], "workspace_manager");
    let found = cli.run(&["member", "search", "acme", "ali", "-o", "json"]).await.ok().json();
    assert!(found.as_array().unwrap().iter().any(|r| r["subject"] == "user:alice"), "{found}");

    let out = cli.run(&["member", "remove", "acme", "user:alice"]).await.ok();
    assert_eq!(out.stdout.trim(), "Removed user:alice from workspace acme");
    let bindings = cli.run(&["binding", "list", "acme", "web", "-o", "json"]).await.ok().json();
    assert_eq!(bindings, json!([]));
    let removed = cli.run(&["history", "list", "acme", "--kind", "binding_removed", "-o", "json"]).await.ok().json();
    assert_eq!(kinds(&removed), ["binding_removed"]);
    assert_eq!(removed[0]["details"]["subject"], "user:alice");
    let members = cli.run(&["member", "list", "acme", "-o", "json"]).await.ok().json();
    assert!(members.as_array().unwrap().iter().all(|m| m["subject"] != "user:alice"), "{members}");

    // Removing again: not a member any more.
    cli.run(&["member", "remove", "acme", "user:alice"]).await.code(5);
}

/// HI3: `canopy history verify` reports an intact history with exit 0 and a
/// tampered one with exit 1; only admins may run it.
async fn hi3_cli_history_verify_reports_ok(app: TestApp) {
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    cli.run(&["workspace", "create", "acme", "--name", "Acme"]).await.ok();
    cli.run(&["project", "create", "acme", "web", "--name", "Web"]).await.ok();

    let out = cli.run(&["history", "verify"]).await.ok();
    assert!(out.lines().iter().any(|l| l.starts_with("ok:") && l.ends_with(" yes")), "{}", out.stdout);
    let v = cli.run(&["history", "verify", "-o", "json"]).await.ok().json();
    assert_eq!(v["ok"], true);
    assert!(v["chains_checked"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["events_checked"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["first_broken"], Value::Null);

    let bob = app.user("bob").await;
    cli.with_token(&bob, &["history", "verify"]).await.code(4);

    // The installation's own history: bob's account was created just now.
    let events =
        cli.run(&["history", "list", "--installation", "--kind", "user_created", "-o", "json"]).await.ok().json();
    assert_eq!(events[0]["details"]["user"], "bob", "{events}");
    cli.run(&["history", "list"]).await.code(2);

    // Rewrite an event behind the server's back.
    app.sql("UPDATE history_events SET details = '{\"workspace\":\"forged\"}' WHERE kind = 'project_created'").await;
    let out = cli.run(&["history", "verify"]).await.code(1);
    assert!(out.lines().iter().any(|l| l.starts_with("ok:") && l.ends_with(" no")), "{}", out.stdout);
    assert!(out.stderr.starts_with("error: the history is broken"), "{}", out.stderr);
    let v = cli.run(&["history", "verify", "-o", "json"]).await.code(1).json();
    assert_eq!(v["ok"], false);
    assert!(v["first_broken"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
}

/// SE7: `canopy history verify` prints the signed checkpoints it received and
/// saves them; given back later, they show a chain cut short, naming it.
async fn se7_cli_history_verify_saves_checkpoints_and_proves_them_later(app: TestApp) {
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    cli.run(&["workspace", "create", "acme", "--name", "Acme"]).await.ok();
    for p in ["web", "api", "db"] {
        cli.run(&["project", "create", "acme", p, "--name", "P"]).await.ok();
    }
    let file = cli.dir.path().join("checkpoints.json");
    let f = file.to_str().unwrap();
    let out = cli.run(&["history", "verify", "--save-checkpoints", f]).await.ok();
    assert!(out.stdout.contains(&format!("checkpoints (key {}", app.history_key.key_id())), "{}", out.stdout);
    assert!(out.lines().iter().any(|l| l.trim_start().starts_with("acme ") && l.contains(" 5 ")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("saved to {f}")), "{}", out.stdout);
    let saved = read_json(&file).await;
    assert_eq!(saved["public_key"], app.history_key.public_key().to_base64());
    assert_eq!(saved["checkpoints"].as_array().unwrap().len(), 2, "{saved}");
    let v = cli.run(&["history", "verify", "-o", "json"]).await.ok().json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["key_id"], app.history_key.key_id());
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 2, "{v}");

    // given back: every checkpoint still contained
    let out = cli.run(&["history", "verify", "--checkpoints", f]).await.ok();
    assert!(out.lines().iter().any(|l| l.starts_with("checkpoints_checked:") && l.ends_with(" 2")), "{}", out.stdout);

    // the last three events of acme's chain cut off and its head moved back
    let chain = "(SELECT id FROM workspaces WHERE identifier = 'acme')";
    app.sql(&format!("DELETE FROM history_events WHERE chain = {chain} AND seq > 2")).await;
    app.sql(&format!(
        "UPDATE history_chains SET last_seq = 2, last_hash = \
         (SELECT hash FROM history_events WHERE chain = {chain} AND seq = 2) WHERE chain = {chain}"
    ))
    .await;
    cli.run(&["history", "verify"]).await.ok();
    let again = cli.dir.path().join("again.json");
    let out = cli
        .run(&["history", "verify", "--checkpoints", f, "--save-checkpoints", again.to_str().unwrap()])
        .await
        .code(1);
    assert!(
        out.stderr.starts_with("error: the history is broken: chain acme at seq 5")
            && out.stderr.contains("removed from its end"),
        "{}",
        out.stderr
    );
    assert!(out.lines().iter().any(|l| l.starts_with("ok:") && l.ends_with(" no")), "{}", out.stdout);
    assert!(!again.exists(), "the checkpoints of a broken history are not saved");
    let v = cli.run(&["history", "verify", "--checkpoints", f, "-o", "json"]).await.code(1).json();
    assert_eq!(v["problems"][0]["code"], "checkpoint_truncated", "{v}");
    assert_eq!(v["problems"][0]["chain"], "acme", "{v}");

    // a file without checkpoints, or with something else in it
    let empty = cli.dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let out = cli.run(&["history", "verify", "--checkpoints", empty.to_str().unwrap()]).await.code(1);
    assert!(out.stderr.contains("no checkpoints"), "{}", out.stderr);
    std::fs::write(&empty, "{\"chain\": 1}").unwrap();
    cli.run(&["history", "verify", "--checkpoints", empty.to_str().unwrap()]).await.code(1);
}

/// ID3: a workspace API key made with the client works as the client's token,
/// within its role, until it is deleted.
async fn id3_cli_api_key_works_as_token(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    app.workspace(&admin, "acme").await;
    app.project(&admin, "acme", "web").await;
    cli.login("admin", ADMIN_PASSWORD).await.ok();

    let created = cli
        .run(&["api-key", "create", "ci-bot", "--role", "member", "--workspace", "acme", "-o", "json"])
        .await
        .ok()
        .json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["key"]["scope"], "workspace");
    assert_eq!(created["key"]["workspace"], "acme");
    assert_eq!(created["key"]["role"], "workspace_member");
    let scoped = cli.run(&["api-key", "list", "--workspace", "acme", "-o", "json"]).await.ok().json();
    assert_eq!(scoped[0]["name"], "ci-bot", "{scoped}");

    // The key as token, from a client with no profile at all.
    let machine = Cli::new(&app);
    let projects = machine.with_token(&secret, &["project", "list", "acme", "-o", "json"]).await.ok().json();
    assert_eq!(
        projects.as_array().unwrap().iter().map(|p| p["identifier"].as_str().unwrap()).collect::<Vec<_>>(),
        ["web"]
    );
    let me = machine.with_token(&secret, &["whoami", "-o", "json"]).await.ok().json();
    assert_eq!(me["kind"], "api_key");
    assert_eq!(me["name"], "ci-bot");
    // Also through the environment, as scripts do.
    let out = machine
        .run_env(&["project", "list", "acme"], &[("CANOPY_SERVER", &app.base), ("CANOPY_TOKEN", &secret)])
        .await
        .ok();
    assert!(out.lines().iter().any(|l| l.starts_with("web ")), "{}", out.stdout);
    // A member key cannot create projects.
    machine.with_token(&secret, &["project", "create", "acme", "api", "--name", "API"]).await.code(4);

    let table = cli.run(&["api-key", "list"]).await.ok();
    assert!(
        table.lines().iter().any(|l| l.starts_with(&id) && l.contains("ci-bot") && l.contains("workspace_member")),
        "{}",
        table.stdout
    );

    // In table output the secret shows once, with a warning on stderr.
    let out = cli.run(&["api-key", "create", "other", "--role", "admin"]).await.ok();
    assert!(out.lines().iter().any(|l| l.starts_with("secret:") && l.len() > "secret:".len() + 8), "{}", out.stdout);
    assert!(out.stderr.contains("not shown again"), "{}", out.stderr);

    let out = cli.run(&["api-key", "delete", &id]).await.ok();
    assert_eq!(out.stdout.trim(), format!("Deleted API key {id}"));
    machine.with_token(&secret, &["project", "list", "acme"]).await.code(3);
}

/// IF3 (admin area): users, groups, project roles and every workspace,
/// managed through the client.
async fn if3_cli_admin_manages_users_groups_and_roles(app: TestApp) {
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();

    // Users: create (password from the environment), find, change, deactivate.
    let bob = cli
        .run_env(
            &[
                "user",
                "create",
                "bob",
                "--email",
                "bob@example.org",
                "--first-name",
                "Bob",
                "--last-name",
                "Builder",
                "--role",
                "platform_engineer",
                "-o",
                "json",
            ],
            &[("CANOPY_NEW_PASSWORD", "bob-password-123")],
        )
        .await
        .ok()
        .json();
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["installation_roles"], json!(["platform_engineer"]));
    let found = cli.run(&["user", "list", "--query", "builder", "-o", "json"]).await.ok().json();
    assert_eq!(found.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect::<Vec<_>>(), ["bob"]);
    let changed = cli.run(&["user", "update", "bob", "--last-name", "Baumeister", "-o", "json"]).await.ok().json();
    assert_eq!(changed["last_name"], "Baumeister");
    cli.run(&["user", "update", "bob"]).await.code(2);

    let bob_cli = Cli::new(&app);
    bob_cli.login("bob", "bob-password-123").await.ok();
    bob_cli.run(&["workspace", "create", "bobs", "--name", "Bob's"]).await.ok();

    cli.run(&["user", "deactivate", "bob"]).await.ok();
    assert_eq!(cli.run(&["user", "show", "bob", "-o", "json"]).await.ok().json()["active"], false);
    bob_cli.run(&["whoami"]).await.code(3);
    let out = bob_cli.login("bob", "bob-password-123").await.code(3);
    // the same answer as a wrong password: it must not tell whether the password was right
    assert!(out.stderr.contains("wrong username or password"), "{}", out.stderr);
    cli.run(&["user", "activate", "bob"]).await.ok();
    cli.run_stdin(&["user", "set-password", "bob", "--password-stdin"], "new-password-for-bob\n").await.ok();
    bob_cli.login("bob", "bob-password-123").await.code(3);
    bob_cli.login("bob", "new-password-for-bob").await.ok();
    // one's own password needs the current one (SE6), from CANOPY_PASSWORD
    let set_own = |current: Option<&'static str>| {
        let mut cmd = bob_cli.command(&["user", "set-password", "bob", "--password-stdin"]);
        if let Some(c) = current {
            cmd.env("CANOPY_PASSWORD", c);
        }
        Cli::output(cmd, Some("bobs-newest-password\n"))
    };
    let out = set_own(None).await.code(2);
    assert!(out.stderr.contains("CANOPY_PASSWORD"), "{}", out.stderr);
    let out = set_own(Some("not-bobs-password")).await.code(7);
    assert!(out.stderr.contains("current_password"), "{}", out.stderr);
    set_own(Some("new-password-for-bob")).await.ok();
    bob_cli.login("bob", "bobs-newest-password").await.ok();
    // signing out ends the session on the server, here or everywhere (SE6)
    let token = read_json(&bob_cli.profile()).await["token"].as_str().unwrap().to_owned();
    let other = app.sign_in("bob", "bobs-newest-password").await;
    let out = bob_cli.run(&["logout"]).await.ok();
    assert!(out.stdout.starts_with("Signed out of"), "{}", out.stdout);
    app.get("/api/v1/me", &token).await.expect_problem(401, None);
    app.get("/api/v1/me", &other).await.expect(200);
    bob_cli.login("bob", "bobs-newest-password").await.ok();
    bob_cli.run(&["logout", "--everywhere"]).await.ok();
    app.get("/api/v1/me", &other).await.expect_problem(401, None);
    bob_cli.login("bob", "bobs-newest-password").await.ok();

    // Every workspace (admin area) versus the admin's own.
    let mine = cli.run(&["workspace", "list", "-o", "json"]).await.ok().json();
    assert!(mine.as_array().unwrap().iter().all(|w| w["identifier"] != "bobs"), "{mine}");
    let all = cli.run(&["workspace", "list", "--all", "-o", "json"]).await.ok().json();
    assert!(all.as_array().unwrap().iter().any(|w| w["identifier"] == "bobs"), "{all}");
    bob_cli.run(&["workspace", "list", "--all"]).await.code(4);

    // Groups.
    cli.run(&["group", "create", "ops", "--name", "Operations"]).await.ok();
    cli.run(&["group", "add-member", "ops", "bob"]).await.ok();
    let members = cli.run(&["group", "members", "ops", "-o", "json"]).await.ok().json();
    assert_eq!(
        members.as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect::<Vec<_>>(),
        ["bob"]
    );
    assert_eq!(cli.run(&["group", "show", "ops", "-o", "json"]).await.ok().json()["member_count"], 1);
    let shown = cli.run(&["group", "show", "ops"]).await.ok();
    assert!(shown.stdout.contains("canopy"), "an admin's own group is Canopy's to manage: {}", shown.stdout);
    cli.run(&["group", "add-member", "ops", "bob"]).await.code(6);
    cli.run(&["group", "remove-member", "ops", "bob"]).await.ok();
    let table = cli.run(&["group", "members", "ops"]).await.ok();
    assert_eq!(table.lines().len(), 1, "only the header: {}", table.stdout);
    let out = cli.run(&["group", "delete", "ops"]).await.ok();
    assert_eq!(out.stdout.trim(), "Deleted group ops");
    cli.run(&["group", "show", "ops"]).await.code(5);

    // Project roles.
    let role = cli
        .run(&[
            "role",
            "create",
            "project_auditor",
            "--name",
            "Auditor",
            "--description",
            "Reads the books",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(role["identifier"], "project_auditor");
    let roles = cli.run(&["role", "list", "-o", "json"]).await.ok().json();
    let ids: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r["identifier"].as_str().unwrap()).collect();
    for r in ["project_reader", "project_user", "project_admin", "project_auditor"] {
        assert!(ids.contains(&r), "{r} missing from {ids:?}");
    }
    let updated = cli
        .run(&["role", "update", "project_auditor", "--name", "Auditor (read-only)", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(updated["display_name"], "Auditor (read-only)");
    assert_eq!(updated["description"], "Reads the books");
    bob_cli.run(&["role", "delete", "project_auditor"]).await.code(4);
    cli.run(&["role", "delete", "project_auditor"]).await.ok();

    // Deleting a user.
    cli.run(&["user", "delete", "bob"]).await.ok();
    cli.run(&["user", "show", "bob"]).await.code(5);
}

/// AD5, TN2: a platform engineer registers a Kubernetes platform (its token
/// from the environment, never printed) and manages a landing zone through
/// the client; a plain user may not register platforms.
async fn ad5_cli_platform_engineer_registers_platform_and_landing_zone(app: TestApp) {
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "pe", "email": "pe@example.org",
        "password": "password-of-pe", "installation_roles": ["platform_engineer"]}),
    )
    .await
    .expect(201);
    let cli = Cli::new(&app);
    cli.login("pe", "password-of-pe").await.ok();
    let token = "k8s-token-value-that-must-not-leak";

    let created = cli
        .run_env(
            &[
                "platform",
                "create",
                "k8s",
                "--type",
                "kubernetes",
                "--setting",
                "api_url=https://127.0.0.1:6443",
                "--secret-from-env",
                "token=CANOPY_TEST_K8S_TOKEN",
                "--role-mapping",
                "project_user=edit",
                "-o",
                "json",
            ],
            &[("CANOPY_TEST_K8S_TOKEN", token)],
        )
        .await
        .ok();
    assert!(!created.stdout.contains(token), "{}", created.stdout);
    let created = created.json();
    assert_eq!(created["type"], "kubernetes");
    assert_eq!(created["settings"], json!({"api_url": "https://127.0.0.1:6443"}));
    assert_eq!(created["secrets"], json!(["token"]));
    assert_eq!(created["role_mapping"], json!({"project_user": "edit"}));
    assert_eq!(created["landing_zone_required"], false);
    assert_eq!(created["deletion"], "manual");

    let list = cli.run(&["platform", "list", "-o", "json"]).await.ok();
    assert!(!list.stdout.contains(token), "{}", list.stdout);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["identifier"], "k8s");
    assert_eq!(list[0]["secrets"], json!(["token"]));
    assert_eq!(list, app.get("/api/v1/platforms", &app.admin_token).await.expect(200).body["items"]);

    // Table output: one row with the secrets' names and the role mapping.
    let table = cli.run(&["platform", "list"]).await.ok();
    let lines = table.lines();
    assert_eq!(lines.len(), 2, "{}", table.stdout);
    for h in ["IDENTIFIER", "TYPE", "DELETION", "LZ REQUIRED", "SECRETS", "ROLE MAPPING"] {
        assert!(lines[0].contains(h), "{h} missing: {}", lines[0]);
    }
    assert!(lines[1].starts_with("k8s ") && lines[1].contains("kubernetes"), "{}", lines[1]);
    assert!(lines[1].contains("token") && lines[1].ends_with("project_user=edit"), "{}", lines[1]);
    let shown = cli.run(&["platform", "show", "k8s"]).await.ok();
    assert!(!shown.stdout.contains(token), "{}", shown.stdout);
    assert!(shown.lines().iter().any(|l| l.starts_with("settings:") && l.ends_with("api_url=https://127.0.0.1:6443")));

    // Rotate the token, change the mapping and the deletion mode.
    let rotated = "rotated-k8s-token-value";
    let updated = cli
        .run_env(
            &[
                "platform",
                "update",
                "k8s",
                "--secret-from-env",
                "token=CANOPY_TEST_K8S_TOKEN",
                "--role-mapping",
                "project_admin=admin",
                "--landing-zone-required",
                "true",
                "--deletion",
                "automatic",
                "-o",
                "json",
            ],
            &[("CANOPY_TEST_K8S_TOKEN", rotated)],
        )
        .await
        .ok();
    assert!(!updated.stdout.contains(rotated), "{}", updated.stdout);
    let updated = updated.json();
    assert_eq!(updated["role_mapping"], json!({"project_admin": "admin"}));
    assert_eq!(updated["landing_zone_required"], true);
    assert_eq!(updated["deletion"], "automatic");
    assert_eq!(updated["settings"], json!({"api_url": "https://127.0.0.1:6443"}), "settings are kept");
    let h = app.get("/api/v1/admin/history?kind=platform_updated", &app.admin_token).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["secrets_rotated"], json!(["token"]));
    assert!(!h.body.to_string().contains(rotated));
    cli.run(&["platform", "update", "k8s"]).await.code(2);

    // A landing zone with a JSON setting and a string one.
    let zone = cli
        .run(&[
            "landing-zone",
            "create",
            "k8s",
            "restricted",
            "--name",
            "Restricted",
            "--setting",
            r#"quota={"pods":"20"}"#,
            "--setting",
            "tier=prod",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(zone["platform"], "k8s");
    assert_eq!(zone["identifier"], "restricted");
    assert_eq!(zone["display_name"], "Restricted");
    assert_eq!(zone["settings"], json!({"quota": {"pods": "20"}, "tier": "prod"}));
    let zones = cli.run(&["landing-zone", "list", "k8s", "-o", "json"]).await.ok().json();
    assert_eq!(zones, json!([zone]));
    let table = cli.run(&["landing-zone", "list", "k8s"]).await.ok();
    assert!(table.lines().iter().any(|l| l.starts_with("restricted ") && l.contains("Restricted")), "{}", table.stdout);
    let updated = cli
        .run(&[
            "landing-zone",
            "update",
            "k8s",
            "restricted",
            "--name",
            "Restricted (prod)",
            "--setting",
            r#"quota={"pods":"50"}"#,
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(updated["display_name"], "Restricted (prod)");
    assert_eq!(updated["settings"], json!({"quota": {"pods": "50"}}), "the settings are replaced");
    let shown = cli.run(&["landing-zone", "show", "k8s", "restricted"]).await.ok();
    assert!(shown.lines().iter().any(|l| l.starts_with("display_name:") && l.ends_with("Restricted (prod)")));
    let out = cli.run(&["landing-zone", "delete", "k8s", "restricted"]).await.ok();
    assert_eq!(out.stdout.trim(), "Deleted landing zone restricted of platform k8s");
    cli.run(&["landing-zone", "show", "k8s", "restricted"]).await.code(5);

    // A plain user sees the platforms but may not register one.
    let ann = app.user("ann").await;
    cli.with_token(&ann, &["platform", "show", "k8s"]).await.ok();
    let out = cli
        .with_token(
            &ann,
            &[
                "platform",
                "create",
                "mine",
                "--type",
                "kubernetes",
                "--setting",
                "api_url=https://127.0.0.1:6443",
                "--secret",
                "token=t",
            ],
        )
        .await
        .code(4);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    cli.with_token(&ann, &["platform", "delete", "k8s"]).await.code(4);

    let out = cli.run(&["platform", "delete", "k8s"]).await.ok();
    assert_eq!(out.stdout.trim(), "Deleted platform k8s");
    cli.run(&["platform", "show", "k8s"]).await.code(5);
}

/// TN1: an invalid platform is refused by the server naming the field
/// (exit 7); a malformed KEY=VALUE is a usage error before any request.
async fn tn1_cli_invalid_platform_is_refused_with_the_field(app: TestApp) {
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();

    let out = cli
        .run(&["platform", "create", "x", "--type", "vmware", "--setting", "api_url=https://k", "--secret", "token=t"])
        .await
        .code(7);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(out.stderr.lines().any(|l| l.starts_with("  type: ")), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    let out = cli.run(&["platform", "create", "x", "--type", "kubernetes", "--secret", "token=t"]).await.code(7);
    assert!(out.stderr.lines().any(|l| l.starts_with("  settings.api_url: ")), "{}", out.stderr);

    let out = cli
        .run(&["platform", "create", "x", "--type", "kubernetes", "--setting", "nokeyvalue", "--secret", "token=t"])
        .await
        .code(2);
    assert!(out.stderr.contains("--setting"), "{}", out.stderr);
    // A malformed --secret is not repeated: it may be the secret itself.
    let out = cli
        .run(&[
            "platform",
            "create",
            "x",
            "--type",
            "kubernetes",
            "--setting",
            "api_url=https://k",
            "--secret",
            "hunter2-secret",
        ])
        .await
        .code(2);
    assert!(out.stderr.contains("--secret") && !out.stderr.contains("hunter2"), "{}", out.stderr);
    let out = cli
        .run(&[
            "platform",
            "create",
            "x",
            "--type",
            "kubernetes",
            "--secret-from-env",
            "token=CANOPY_TEST_UNSET_VARIABLE",
        ])
        .await
        .code(2);
    assert!(out.stderr.contains("--secret-from-env") && out.stderr.contains("not set"), "{}", out.stderr);
    cli.run(&["platform", "create", "x", "--type", "kubernetes", "--deletion", "sometimes"]).await.code(2);

    let list = cli.run(&["platform", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list, json!([]), "nothing was registered");
}

async fn if4_cli_replicates_many_tenants_with_progress(app: TestApp) {
    use crate::tenants::{Os, unique};
    let Some(os) = Os::get() else { return };
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    let ws = unique("w");
    let platform = unique("os");
    app.workspace(&app.admin_token, &ws).await;
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    for p in ["api", "db", "web"] {
        app.project(&app.admin_token, &ws, p).await;
        cli.run(&["tenant", "add", &ws, p, &platform]).await.ok();
    }
    cli.run(&["tenant", "add", &ws, "web", "nope"]).await.code(7);
    // the engine runs beside the CLI, as `canopy serve` would run it
    let replicator = app.replicator.clone();
    let engine = tokio::spawn(async move {
        loop {
            replicator.run_until_idle().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let out = cli.run(&["tenant", "replicate", &ws, "--wait"]).await.ok();
    // not a terminal: one progress line per finished tenant
    let progress: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 3, "{}", out.stderr);
    assert!(progress[0].starts_with("[1/3]") && progress[2].starts_with("[3/3]"), "{progress:?}");
    assert_eq!(out.stdout.matches("succeeded").count(), 3, "{}", out.stdout);
    let list = cli.run(&["tenant", "list", &ws, "web", "-o", "json"]).await.ok().json();
    assert_eq!(list[0]["status"], "succeeded");
    let plan = cli.run(&["tenant", "plan", &ws, "web", &platform, "-o", "json"]).await.ok().json();
    assert_eq!((plan["grant"].clone(), plan["revoke"].clone()), (json!([]), json!([])));
    let one =
        cli.run(&["tenant", "replicate", &ws, "db", "--platform", &platform, "--wait", "-o", "json"]).await.ok().json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    engine.abort();
}

async fn dl3_cli_deletes_a_project_with_confirmation_and_an_engineer(app: TestApp) {
    use crate::tenants::{Os, unique};
    let Some(os) = Os::get() else { return };
    let cli = Cli::new(&app);
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    let ws = unique("w");
    let (auto, manual) = (unique("auto"), unique("manual"));
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for (platform, mode) in [(&auto, "automatic"), (&manual, "manual")] {
        let domain = unique("d");
        os.domain(&domain).await;
        let mut body = os.platform(platform, &domain);
        body["deletion"] = json!(mode);
        app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
        cli.run(&["tenant", "add", &ws, "web", platform]).await.ok();
    }
    app.replicate().await;
    let out = cli.run(&["project", "delete", &ws, "web"]).await.ok();
    assert!(out.stdout.contains("awaiting_confirmation") && out.stderr.contains("confirm-deletion"), "{out:?}");
    cli.run(&["project", "confirm-deletion", &ws, "web", "--identifier", "nope"]).await.code(7);
    let d =
        cli.run(&["project", "confirm-deletion", &ws, "web", "--identifier", "web", "-o", "json"]).await.ok().json();
    assert_eq!(d["state"], "in_progress");
    app.replicate().await;
    let pending = cli.run(&["tenant-deletion", "list", &manual, "-o", "json"]).await.ok().json();
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    cli.run(&["tenant-deletion", "confirm", &manual, &id]).await.ok();
    cli.run(&["project", "show", &ws, "web"]).await.code(5);
}

/// AD3, AD4, AC8: emergency access from the command line: a grant with its
/// mandatory expiration and justification, on the list of expiring bindings,
/// then a revocation and its report.
async fn ad4_ac8_cli_emergency_access_and_expiring_bindings(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    app.workspace(&admin, "acme").await;
    app.project(&admin, "acme", "web").await;
    app.user("erin").await;
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    let until = (canopy_domain::clock::Clock::now(app.clock.as_ref()) + time::Duration::hours(4))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // the justification is required: a usage error before any request
    cli.run(&[
        "emergency",
        "grant",
        "acme",
        "web",
        "--user",
        "erin",
        "--role",
        "project_admin",
        "--expires-at",
        &until,
    ])
    .await
    .code(2);
    let out = cli
        .run(&[
            "emergency",
            "grant",
            "acme",
            "web",
            "--user",
            "erin",
            "--role",
            "project_admin",
            "--expires-at",
            &until,
            "--justification",
            "incident 7",
        ])
        .await
        .ok();
    assert!(out.stdout.contains("member_added:") && out.stdout.contains("yes"), "{}", out.stdout);
    let bindings = cli.run(&["binding", "list", "acme", "web", "-o", "json"]).await.ok().json();
    assert_eq!(bindings[0]["subject"], "user:erin");
    assert_eq!(bindings[0]["justification"], "incident 7");
    let expiring = cli.run(&["binding", "expired", "acme", "-o", "json"]).await.ok().json();
    assert_eq!((expiring[0]["subject"].as_str(), expiring[0]["state"].as_str()), (Some("user:erin"), Some("soon")));
    let table = cli.run(&["binding", "expired", "--state", "soon"]).await.ok();
    assert!(table.stdout.starts_with("STATE") && table.stdout.contains("user:erin"), "{}", table.stdout);
    assert_eq!(
        cli.run(&["binding", "expired", "acme", "--state", "expired", "-o", "json"]).await.ok().json(),
        json!([])
    );

    let r = cli.run(&["emergency", "revoke", "erin", "--justification", "done", "-o", "json"]).await.ok().json();
    assert_eq!(r["bindings"], json!([{"workspace": "acme", "project": "web", "role": "project_admin"}]));
    assert_eq!(r["memberships"], json!([{"workspace": "acme", "role": "workspace_member"}]));
    let id = r["id"].as_str().unwrap();
    let shown = cli.run(&["emergency", "show", id]).await.ok();
    assert!(
        shown.stdout.contains("deactivated:") && shown.stdout.contains("acme (workspace_member)"),
        "{}",
        shown.stdout
    );
    cli.run(&["emergency", "revoke", "nobody-at-all"]).await.code(7);
}

/// PR3: project tags from the command line, checked against the definitions.
async fn pr3_cli_project_tags(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    app.workspace(&admin, "acme").await;
    for body in [
        json!({"key": "cost-centre", "display_name": "Cost centre", "type": "string", "required": true}),
        json!({"key": "budget", "display_name": "Budget", "type": "number"}),
        json!({"key": "langs", "display_name": "Languages", "type": "multi_select", "options": ["rust", "go"]}),
    ] {
        app.post("/api/v1/tag-definitions", &admin, body).await.expect(201);
    }
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    let out = cli.run(&["project", "create", "acme", "web", "--name", "Web", "--tag", "budget=12"]).await.code(7);
    assert!(out.stderr.contains("tags.cost-centre"), "{}", out.stderr);
    let p = cli
        .run(&[
            "project",
            "create",
            "acme",
            "web",
            "--name",
            "Web",
            "--tag",
            "cost-centre=0042",
            "--tag",
            r#"langs=["rust"]"#,
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(p["tags"], json!({"cost-centre": "0042", "langs": ["rust"]}));
    let p = cli
        .run(&["project", "tag", "acme", "web", "--tag", "budget=99.5", "--remove", "langs", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(p["tags"], json!({"cost-centre": "0042", "budget": 99.5}));
    cli.run(&["project", "tag", "acme", "web", "--tag", "budget=lots"]).await.code(7);
}

/// PM1-PM3 from the command line: payment methods, a project's method and
/// substitute, the forecast.
async fn pm1_pm2_cli_payment_methods(app: TestApp) {
    let cli = Cli::new(&app);
    app.workspace(&app.admin_token, "acme").await;
    app.project(&app.admin_token, "acme", "web").await;
    cli.login("admin", ADMIN_PASSWORD).await.ok();
    let add = |name: &'static str, until: &'static str| {
        let cli = &cli;
        async move {
            let out = cli
                .run(&[
                    "payment-method",
                    "add",
                    "acme",
                    "--name",
                    name,
                    "--amount",
                    "500",
                    "--expires-on",
                    until,
                    "--billing",
                    "po=4711",
                    "-o",
                    "json",
                ])
                .await;
            out.ok().json()["id"].as_str().unwrap().to_owned()
        }
    };
    let card = add("Card", "2026-12-10").await;
    let next = add("Next", "2027-12-10").await;
    cli.run(&["payment-method", "add", "acme", "--name", "Bad", "--amount", "1", "--expires-on", "soon"]).await.code(7);
    let p = cli.run(&["project", "payment", "acme", "web", "--method", &card, "-o", "json"]).await.ok().json();
    assert_eq!(p["payment_method"], card.as_str());
    let f = cli.run(&["payment-method", "forecast", "acme", "-o", "json"]).await.ok().json();
    assert_eq!(f[0]["project"], "web");
    cli.run(&["project", "payment", "acme", "web", "--substitute", &next]).await.ok();
    assert_eq!(cli.run(&["payment-method", "forecast", "acme", "-o", "json"]).await.ok().json(), json!([]));
    cli.run(&["payment-method", "delete", "acme", &card]).await.code(6);
    let table = cli.run(&["payment-method", "list", "acme"]).await.ok();
    assert!(table.stdout.starts_with("ID") && table.stdout.contains("Next"), "{}", table.stdout);
}

/// The value of the `key: value` line of `key` in table output.
fn field<'a>(out: &'a Out, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    let line =
        out.stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key}: {}", out.stdout));
    line[prefix.len()..].trim()
}

/// FE1-FE4 from the command line: with four-eye on, `canopy binding add`
/// and `remove` make pending requests; another manager lists and approves
/// one (the requester may not) and declines the other, which changes nothing.
async fn fe2_cli_requests_are_listed_approved_and_declined(app: TestApp) {
    let cli = Cli::new(&app);
    let admin = app.admin_token.clone();
    let set = cli.with_token(&admin, &["settings", "set", "--four-eye", "on", "--approvals", "1", "-o", "json"]).await;
    assert_eq!(set.ok().json()["four_eye"], json!({"enabled": true, "approvals": 1}));
    cli.with_token(&admin, &["settings", "set"]).await.code(2);
    let shown = cli.with_token(&admin, &["settings", "show"]).await.ok();
    assert_eq!((field(&shown, "four_eye"), field(&shown, "four_eye_approvals")), ("on", "1"), "{}", shown.stdout);

    let olga = app.user("olga").await;
    let mia = app.user("mia").await;
    app.user("ann").await;
    cli.with_token(&olga, &["workspace", "create", "acme", "--name", "Acme"]).await.ok();
    cli.with_token(&olga, &["project", "create", "acme", "web", "--name", "Web"]).await.ok();
    cli.with_token(&olga, &["member", "add", "acme", "--user", "ann", "--role", "member"]).await.ok();
    cli.with_token(&olga, &["member", "add", "acme", "--user", "mia", "--role", "manager"]).await.ok();
    let ws = cli.with_token(&olga, &["workspace", "show", "acme"]).await.ok();
    assert_eq!(field(&ws, "four_eye"), "on, 1 approval (the installation's)", "{}", ws.stdout);

    // Without a justification the change is refused, naming the field.
    let add = ["binding", "add", "acme", "web", "--user", "ann", "--role", "project_user"];
    let out = cli.with_token(&olga, &add).await.code(7);
    assert!(out.stderr.lines().any(|l| l.starts_with("  justification: ")), "{}", out.stderr);
    let out = cli.with_token(&olga, &[&add[..], &["--justification", "new hire"]].concat()).await.ok();
    assert!(out.stdout.starts_with("Waits for approval: request "), "{}", out.stdout);
    assert_eq!((field(&out, "state"), field(&out, "kind")), ("pending", "add"), "{}", out.stdout);
    assert_eq!((field(&out, "approvals"), field(&out, "needs_admin")), ("0/1", "no"), "{}", out.stdout);
    let id = field(&out, "id").to_owned();
    assert_eq!(cli.with_token(&olga, &["binding", "list", "acme", "web", "-o", "json"]).await.ok().json(), json!([]));

    // The other manager sees it, in an aligned table.
    let list = cli.with_token(&mia, &["request", "list", "acme"]).await.ok();
    let lines = list.lines();
    assert_eq!(lines.len(), 2, "{}", list.stdout);
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("APPROVALS") && lines[0].contains("NEEDS ADMIN"),
        "{}",
        lines[0]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [id.as_str(), "acme", "web", "add", "user:ann", "project_user", "-", "0/1", "no", "olga", "pending"]
    );
    assert_eq!(lines[1].find("0/1"), lines[0].find("APPROVALS"), "columns are aligned: {}", list.stdout);

    // Not the requester's to approve (403); the other manager's (then 409 on a second try).
    let out = cli.with_token(&olga, &["request", "approve", "acme", &id]).await.code(4);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    let out = cli.with_token(&mia, &["request", "approve", "acme", &id, "--reason", "welcome"]).await.ok();
    assert!(out.stdout.starts_with(&format!("Approved request {id}")), "{}", out.stdout);
    assert_eq!((field(&out, "state"), field(&out, "approvals")), ("approved", "1/1"), "{}", out.stdout);
    cli.with_token(&mia, &["request", "approve", "acme", &id]).await.code(6);
    let bindings = cli.with_token(&olga, &["binding", "list", "acme", "web", "-o", "json"]).await.ok().json();
    assert_eq!(
        (bindings[0]["subject"].as_str(), bindings[0]["role"].as_str()),
        (Some("user:ann"), Some("project_user"))
    );
    let binding = bindings[0]["id"].as_str().unwrap().to_owned();
    let shown = cli.with_token(&mia, &["request", "show", "acme", &id, "-o", "json"]).await.ok().json();
    assert_eq!(shown["binding"], binding.as_str());
    let table = cli.with_token(&olga, &["binding", "list", "acme", "web"]).await.ok();
    assert!(table.lines()[1].starts_with(&binding) && table.stdout.contains("user:ann"), "{}", table.stdout);

    // A removal is a request too (its justification goes in the query); declined, nothing changes.
    let why = "left the team & moved to ops?";
    let removal = cli
        .with_token(&olga, &["binding", "remove", "acme", "web", &binding, "--justification", why, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!((removal["kind"].as_str(), removal["state"].as_str()), (Some("remove"), Some("pending")));
    assert_eq!((removal["justification"].as_str(), removal["binding"].as_str()), (Some(why), Some(binding.as_str())));
    let removal = removal["id"].as_str().unwrap();
    let out = cli.with_token(&mia, &["request", "decline", "acme", removal, "--reason", "still on call"]).await.ok();
    assert!(out.stdout.starts_with(&format!("Declined request {removal}")), "{}", out.stdout);
    assert_eq!((field(&out, "state"), field(&out, "reason")), ("declined", "still on call"), "{}", out.stdout);
    let bindings = cli.with_token(&olga, &["binding", "list", "acme", "web", "-o", "json"]).await.ok().json();
    assert_eq!(bindings.as_array().unwrap().len(), 1, "{bindings}");
    assert_eq!(bindings[0]["id"], binding.as_str());
    assert_eq!(cli.with_token(&mia, &["request", "list", "acme", "-o", "json"]).await.ok().json(), json!([]));
    let all = cli.with_token(&mia, &["request", "list", "acme", "--state", "all", "-o", "json"]).await.ok().json();
    let mut states: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    states.sort_unstable();
    assert_eq!(states, ["approved", "declined"]);

    // Every workspace's requests are for admins.
    let declined =
        cli.with_token(&admin, &["request", "list", "--all-workspaces", "--state", "declined", "-o", "json"]).await;
    assert_eq!(declined.ok().json()[0]["id"], removal);
    cli.with_token(&mia, &["request", "list", "--all-workspaces"]).await.code(4);
    cli.with_token(&olga, &["settings", "show", "-o", "json"]).await.code(4);

    // An admin switches four-eye off for the workspace alone: changes apply at once.
    let off = cli.with_token(&admin, &["workspace", "four-eye", "acme", "--enabled", "off"]).await.ok();
    assert_eq!(field(&off, "four_eye"), "off (the workspace's own)", "{}", off.stdout);
    cli.with_token(&olga, &["workspace", "four-eye", "acme", "--inherit"]).await.code(4);
    let out = cli.with_token(&olga, &["binding", "remove", "acme", "web", &binding]).await.ok();
    assert_eq!(out.stdout.trim(), format!("Removed binding {binding} of project web"));
    let back = cli.with_token(&admin, &["workspace", "four-eye", "acme", "--inherit", "-o", "json"]).await.ok().json();
    assert_eq!(back["four_eye"], json!({"enabled": true, "approvals": 1, "source": "installation"}));
}

canopy_testkit::backend_tests! {
    fe2_cli_requests_are_listed_approved_and_declined,
    pm1_pm2_cli_payment_methods,
    pr3_cli_project_tags,
    ad4_ac8_cli_emergency_access_and_expiring_bindings,
    dl3_cli_deletes_a_project_with_confirmation_and_an_engineer,
    if4_cli_replicates_many_tenants_with_progress,
    if3_cli_login_workspace_project_binding_history_walkthrough,
    if3_cli_json_output_is_the_api_json,
    if3_cli_errors_exit_non_zero_with_field_message,
    if3_cli_admin_manages_users_groups_and_roles,
    ws6_cli_member_remove_ends_bindings,
    hi3_cli_history_verify_reports_ok,
    se7_cli_history_verify_saves_checkpoints_and_proves_them_later,
    id3_cli_api_key_works_as_token,
    ad5_cli_platform_engineer_registers_platform_and_landing_zone,
    tn1_cli_invalid_platform_is_refused_with_the_field,
}
