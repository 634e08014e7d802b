//! ID1, WS3: sign-in through a real OpenID Connect provider (npm
//! oidc-provider, started by `scripts/oidc`), in headless Chromium and over
//! plain HTTP for what a browser would not send. The provider makes its
//! accounts up from the login name typed on its page
//! (`scripts/oidc_provider.mjs`): `ann` has a verified e-mail address,
//! `unverified-eve` an unverified one, `brief-bob` an ID token that lives a
//! second.

use canopy_testkit::browser::{Page, Viewport, browser};
use canopy_testkit::{ADMIN_PASSWORD, Backend, TestApp, oidc_provider, spawn_app_with};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

async fn app_with_provider(backend: Backend) -> Option<TestApp> {
    let settings = oidc_provider()?;
    spawn_app_with(backend, |c| c.oidc = Some(settings)).await
}

fn shot(app: &TestApp, name: &str) -> String {
    format!("{name}-{}", format!("{:?}", app.backend).to_lowercase())
}

/// From Canopy's sign-in page through the provider's own login and consent
/// pages, as `login`.
async fn sign_in_at_the_provider(page: &Page, app: &TestApp, login: &str) {
    page.goto(&format!("{}/login", app.base)).await;
    page.click_link("Sign in with Test SSO").await;
    page.wait_for("input[name=login]").await;
    page.fill("login", login).await;
    page.fill("password", "any password: the provider's test pages ignore it").await;
    page.click_button("Sign-in").await;
    // then the consent page, the first time this account meets the client,
    // or Canopy again; the login page has a submit button too, so wait for
    // it to be gone rather than for a button
    let start = std::time::Instant::now();
    let canopy = format!("{}/", app.base);
    loop {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "stuck at {}", page.url().await);
        if page.url().await.starts_with(&canopy) {
            return;
        }
        if !page.exists("input[name=login]").await && page.exists("button[type=submit]").await {
            page.click_button("Continue").await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn members(app: &TestApp, ws: &str) -> Vec<String> {
    let m = app.get(&format!("/api/v1/workspaces/{ws}/members"), &app.admin_token).await.expect(200);
    m.body["items"].as_array().unwrap().iter().map(|i| i["subject"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn both(test: impl AsyncFn(TestApp)) {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(app) = app_with_provider(backend).await {
            test(app).await;
        }
    }
}

/// The first sign-in through the provider makes the account from its claims
/// and accepts the pending invitation of its verified address (WS3); an
/// unverified address makes no account and claims nothing; the history
/// records the account made;
/// a deactivated account is refused through the provider too (AC10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_ws3_first_sign_in_makes_the_account_and_only_a_verified_address_claims_an_invitation() {
    both(async |app: TestApp| {
        let Some(browser) = browser().await else { return };
        app.workspace(&app.admin_token, "team-a").await;
        for email in ["ann@example.org", "eve@example.org"] {
            app.post(
                "/api/v1/workspaces/team-a/members",
                &app.admin_token,
                json!({"email": email, "role": "workspace_member"}),
            )
            .await
            .expect(201);
        }

        let page = browser.open(Viewport::Desktop).await;
        page.goto(&format!("{}/login", app.base)).await;
        page.wait_for_text("Sign in with Test SSO").await;
        page.screenshot(&shot(&app, "login-with-sso")).await;
        sign_in_at_the_provider(&page, &app, "ann").await;
        page.wait_for_text("Welcome, ann").await;
        assert!(page.body_text().await.contains("Workspace team-a"), "the invitation's workspace is on the home page");
        let ann = app.get("/api/v1/users/ann", &app.admin_token).await.expect(200);
        assert_eq!(ann.body["email"], "ann@example.org");
        assert_eq!(ann.body["first_name"], "Ann");
        assert!(members(&app, "team-a").await.contains(&"user:ann".to_owned()), "the invitation became membership");
        page.close().await;

        // an admin sees how the account signs in
        let page = browser.open(Viewport::Desktop).await;
        page.goto(&format!("{}/login?next=/admin/users/ann", app.base)).await;
        page.fill("username", "admin").await;
        page.fill("password", ADMIN_PASSWORD).await;
        page.click_button("Sign in").await;
        page.wait_for_text("Signs in").await;
        let issuer = oidc_provider().unwrap().issuer;
        assert!(page.body_text().await.contains(&format!("through {issuer}")), "{}", page.body_text().await);
        page.close().await;

        // an address the provider did not verify makes no account and claims no invitation
        let page = browser.open(Viewport::Desktop).await;
        sign_in_at_the_provider(&page, &app, "unverified-eve").await;
        page.wait_for_text("has not verified the e-mail address eve@example.org").await;
        app.get("/api/v1/users/eve", &app.admin_token).await.expect(404);
        assert!(!members(&app, "team-a").await.contains(&"user:eve".to_owned()));
        page.close().await;

        let history = app.get("/api/v1/admin/history?kind=user_signed_up", &app.admin_token).await.expect(200);
        let made: Vec<(Value, Value)> = history.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["details"]["user"].clone(), e["details"]["email"].clone()))
            .collect();
        assert_eq!(made, vec![(json!("ann"), json!("ann@example.org"))]);

        // deactivated: the provider still vouches for ann, Canopy refuses
        app.patch("/api/v1/users/ann", &app.admin_token, json!({"active": false})).await.expect(200);
        let page = browser.open(Viewport::Desktop).await;
        sign_in_at_the_provider(&page, &app, "ann").await;
        page.wait_for_text("is deactivated").await;
        assert!(page.url().await.contains("/auth/oidc/callback"));
        page.screenshot(&shot(&app, "login-with-sso-deactivated")).await;
        page.close().await;
    })
    .await;
}

/// An ID token that expired by Canopy's clock is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_an_expired_id_token_is_refused() {
    both(async |app: TestApp| {
        let Some(browser) = browser().await else { return };
        app.clock.set(OffsetDateTime::now_utc());
        let page = browser.open(Viewport::Desktop).await;
        page.goto(&format!("{}/login", app.base)).await;
        page.click_link("Sign in with Test SSO").await;
        page.wait_for("input[name=login]").await;
        page.fill("login", "brief-bob").await;
        page.fill("password", "x").await;
        // the token will live a second; Canopy's clock is two minutes on when it arrives
        app.clock.advance(Duration::minutes(2));
        page.click_button("Sign-in").await;
        page.wait_for("button[type=submit]").await;
        if page.body_text().await.contains("Continue") {
            page.click_button("Continue").await;
        }
        page.wait_for_text("Sign-in with Test SSO failed").await;
        let text = page.body_text().await;
        assert!(text.contains("ID token was refused") && text.contains("xpired"), "{text}");
        // (the admin's token is from before the clock moved on)
        let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
        app.get("/api/v1/users/bob", &admin).await.expect(404);
        page.screenshot(&shot(&app, "login-with-sso-expired")).await;
        page.close().await;
    })
    .await;
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (k, value) = pair.split_once('=')?;
        (k == name).then(|| value.to_owned())
    })
}

/// A `state` is used once and only in the browser that started it; the
/// provider's refusal is shown; the redirect carries PKCE and a nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_a_replayed_or_foreign_state_is_refused() {
    both(async |app: TestApp| {
        let http = no_redirects();
        let start = http.get(format!("{}/auth/oidc/login?next=/profile", app.base)).send().await.unwrap();
        assert_eq!(start.status(), 303);
        let to = start.headers()["location"].to_str().unwrap().to_owned();
        for param in ["code_challenge_method=S256", "code_challenge=", "nonce=", "state=", "scope=openid"] {
            assert!(to.contains(param), "{param} in {to}");
        }
        let state = set_cookie(&start, "canopy_oidc").unwrap();
        assert!(to.contains(&format!("state={state}")));

        let callback = |state: &str, cookie: Option<&str>| {
            let mut req = http.get(format!("{}/auth/oidc/callback?code=forged-code&state={state}", app.base));
            if let Some(c) = cookie {
                req = req.header("cookie", format!("canopy_oidc={c}"));
            }
            req.send()
        };
        // from another browser (no cookie): refused before anything is used
        let foreign = callback(&state, None).await.unwrap();
        assert_eq!(foreign.status(), 403);
        assert!(foreign.text().await.unwrap().contains("not started in this browser"));
        // the provider refuses the forged code: the state is spent
        let first = callback(&state, Some(&state)).await.unwrap();
        assert_eq!(first.status(), 401);
        assert!(first.text().await.unwrap().contains("did not accept the sign-in"));
        // replayed
        let again = callback(&state, Some(&state)).await.unwrap();
        assert_eq!(again.status(), 401);
        assert!(again.text().await.unwrap().contains("used already"));
        // the provider said no: its words, escaped, only for the browser that started the sign-in
        let again = http.get(format!("{}/auth/oidc/login", app.base)).send().await.unwrap();
        let state = set_cookie(&again, "canopy_oidc").unwrap();
        let denied = |cookie: Option<String>| {
            let mut req = http.get(format!(
                "{}/auth/oidc/callback?error=access_denied&error_description=<b>call+0800</b>&state={state}",
                app.base
            ));
            if let Some(c) = cookie {
                req = req.header("cookie", format!("canopy_oidc={c}"));
            }
            req.send()
        };
        let elsewhere = denied(None).await.unwrap();
        assert_eq!(elsewhere.status(), 401);
        let body = elsewhere.text().await.unwrap();
        assert!(body.contains("refused it, or it was interrupted") && !body.contains("0800"), "{body}");
        let here = denied(Some(state.clone())).await.unwrap();
        assert_eq!(here.status(), 401);
        let body = here.text().await.unwrap();
        assert!(body.contains("access_denied") && body.contains("0800") && !body.contains("<b>"), "escaped: {body}");
        // nobody signed in on the way
        let users = app.get("/api/v1/users", &app.admin_token).await.expect(200);
        assert_eq!(users.body["items"].as_array().unwrap().len(), 1, "only admin");
    })
    .await;
}

/// A provider whose discovery names another issuer than the one configured
/// is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_a_provider_with_another_issuer_is_refused() {
    let Some(mut settings) = oidc_provider() else { return };
    // the same provider under another name: its metadata says 127.0.0.1
    settings.issuer = settings.issuer.replace("127.0.0.1", "localhost");
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.oidc = Some(settings)).await else { return };
    let start = no_redirects().get(format!("{}/auth/oidc/login", app.base)).send().await.unwrap();
    assert_eq!(start.status(), 503);
    let body = start.text().await.unwrap();
    assert!(body.contains("not available right now") && body.contains("discovery failed"), "{body}");
    // local accounts still sign in
    app.sign_in("admin", ADMIN_PASSWORD).await;
}

/// `canopy login --sso` (ID1): the command prints an address; the browser
/// signs in at the provider through it; the one-time code comes back to the
/// command's loopback port and, with the verifier only the command holds,
/// becomes a session token; a code never handed out is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_cli_signs_in_through_the_provider_in_a_browser() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    both(async |app: TestApp| {
        let Some(browser) = browser().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile.json");
        let canopy = |args: &[&str]| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
            cmd.env("CANOPY_PROFILE", &profile).args(args).kill_on_drop(true);
            cmd
        };
        let mut login = canopy(&["login", "--server", &app.base, "--sso", "--sso-wait-seconds", "60"]);
        let mut child =
            login.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut url = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(u) = line.trim().strip_prefix(&format!("{}/auth/oidc/login?", app.base)) {
                url = format!("{}/auth/oidc/login?{u}", app.base);
                break;
            }
        }
        assert!(url.contains("cli_challenge="), "the command printed no address to open");
        // a page probing loopback ports does not end the wait
        let port = url.split("cli_port=").nth(1).unwrap().split('&').next().unwrap().to_owned();
        let probe = reqwest::get(format!("http://127.0.0.1:{port}/callback?code=cnp_c_x&state=y")).await.unwrap();
        assert_eq!(probe.status(), 400);

        let page = browser.open(Viewport::Desktop).await;
        page.goto(&url).await;
        page.wait_for("input[name=login]").await;
        page.fill("login", "ann").await;
        page.fill("password", "x").await;
        page.click_button("Sign-in").await;
        page.wait_for("button[type=submit]").await;
        if page.body_text().await.contains("Continue") {
            page.click_button("Continue").await;
        }
        // the person says so before the code goes to the command
        page.wait_for_text("Sign in the command line?").await;
        assert!(page.body_text().await.contains("signed in as ann"));
        page.screenshot(&shot(&app, "cli-sign-in-confirm")).await;
        page.click_link("Sign in the command line").await;
        page.wait_for_text("You can close this tab").await;
        assert!(page.url().await.starts_with("http://127.0.0.1:"), "back on the loopback address");
        page.close().await;
        let done = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output()).await.unwrap();
        let done = done.unwrap();
        assert!(done.status.success(), "{done:?}");
        assert!(String::from_utf8_lossy(&done.stdout).contains("as ann"), "{done:?}");
        let whoami = canopy(&["whoami", "-o", "json"]).output().await.unwrap();
        assert!(whoami.status.success(), "{whoami:?}");
        let me: Value = serde_json::from_slice(&whoami.stdout).unwrap();
        assert_eq!(me["name"], "ann");

        // a code that was never handed out
        let guessed = json!({"code": "cnp_c_guessed", "verifier": "anything"});
        app.request("POST", "/api/v1/auth/sso/token", None, Some(guessed)).await.expect_problem(401, None);
    })
    .await;
}

/// `/auth/oidc/login` refuses a CLI port or challenge that is not well formed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_a_malformed_cli_sign_in_is_refused() {
    let Some(app) = app_with_provider(Backend::Sqlite).await else { return };
    for query in ["cli_port=80&cli_challenge=x", "cli_port=5000", "cli_port=5000&cli_challenge=short"] {
        let res = no_redirects().get(format!("{}/auth/oidc/login?{query}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{query}");
    }
}

/// `--local-sign-in admins`: with everyone signing in through the provider,
/// passwords are left to admins (break-glass); anyone else is refused like
/// a wrong password (no answer confirms a password), told the way to sign
/// in, in the browser and the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_local_accounts_can_be_turned_off_for_all_but_admins() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(settings) = oidc_provider() else { return };
        let admins_only = |c: &mut canopy_server::ServerConfig| {
            c.oidc = Some(settings);
            c.local_sign_in = canopy_domain::signin::LocalSignIn::AdminsOnly;
        };
        let Some(app) = spawn_app_with(backend, admins_only).await else { continue };
        let kim = json!({"username": "kim", "email": "kim@example.org", "first_name": "Kim", "last_name": "Tester",
                         "password": "password-of-kim"});
        app.post("/api/v1/users", &app.admin_token, kim).await.expect(201);
        let body = json!({"username": "kim", "password": "password-of-kim"});
        // answered like a wrong password, so that the answer confirms no password
        let refused = app.request("POST", "/api/v1/auth/token", None, Some(body)).await.expect_problem(401, None);
        assert!(refused.body["detail"].as_str().unwrap().contains("canopy login --sso"), "{}", refused.body);
        let wrong = json!({"username": "kim", "password": "wrong-password-1"});
        let wrong = app.request("POST", "/api/v1/auth/token", None, Some(wrong)).await.expect_problem(401, None);
        assert_eq!(wrong.body["detail"], refused.body["detail"]);
        app.sign_in("admin", ADMIN_PASSWORD).await;

        let Some(browser) = browser().await else { return };
        let page = browser.open(Viewport::Desktop).await;
        page.goto(&format!("{}/login", app.base)).await;
        page.wait_for_text("Sign in with Test SSO").await;
        assert!(!page.exists("#username:focus").await, "the folded password form does not take the focus");
        page.screenshot(&shot(&app, "login-break-glass")).await;
        page.click("details.break-glass summary").await;
        page.fill("username", "kim").await;
        page.fill("password", "password-of-kim").await;
        page.click_button("Sign in").await;
        page.wait_for_text("Passwords here are for admins only").await;
        assert!(page.text("#login-error").await.contains("is wrong"), "the same answer as a wrong password");
        page.fill("username", "admin").await;
        page.fill("password", ADMIN_PASSWORD).await;
        page.click_button("Sign in").await;
        page.wait_for_text("Welcome, admin").await;
        page.close().await;
    }
}

/// A provider of this test's own, started from the fixture `scripts/oidc`
/// installed (each start makes a new signing key).
async fn own_provider(port: u16, settings: &canopy_server::oidc::OidcSettings) -> tokio::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/test-tools/oidc/oidc_provider.mjs");
    let child = tokio::process::Command::new("node")
        .args([script, &port.to_string(), &settings.client_id, &settings.client_secret])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let discovery = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    for _ in 0..100 {
        if reqwest::get(&discovery).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the test's own oidc-provider did not answer on port {port}");
}

/// The provider rotates its signing keys (here: it restarts with a new
/// one): Canopy fetches them again when an ID token's key is not among those
/// it knows, and the next person signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_the_providers_new_signing_keys_are_fetched_again() {
    let Some(shared) = oidc_provider() else { return };
    let Some(browser) = browser().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut provider = own_provider(port, &shared).await;
    let settings = canopy_server::oidc::OidcSettings { issuer: format!("http://127.0.0.1:{port}"), ..shared.clone() };
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.oidc = Some(settings)).await else { return };
    let page = browser.open(Viewport::Desktop).await;
    sign_in_at_the_provider(&page, &app, "ann").await;
    page.wait_for_text("Welcome, ann").await;
    page.close().await;

    provider.kill().await.unwrap();
    let _provider = own_provider(port, &shared).await;
    let page = browser.open(Viewport::Desktop).await;
    sign_in_at_the_provider(&page, &app, "bob").await;
    page.wait_for_text("Welcome, bob").await;
    page.close().await;
}

/// A one-time code for `canopy login --sso`, as the callback leaves it, for
/// `user`: (code, verifier).
async fn cli_grant(app: &TestApp, user: &str) -> (String, String) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};
    let code = format!("cnp_c_{}", URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))[..43].to_owned());
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let hash: String = Sha256::digest(code.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let now = canopy_domain::clock::Clock::now(&*app.clock);
    let mut tx = app.store.write().await.unwrap();
    let user_id = tx.user_by_username(user).await.unwrap().unwrap().id;
    let grant = canopy_store::CliGrant { user_id, challenge, expires_at: now + Duration::minutes(2) };
    tx.insert_cli_grant(&hash, &grant, now).await.unwrap();
    tx.commit().await.unwrap();
    (code, verifier)
}

/// The CLI's one-time code is redeemed once, with its verifier, within two
/// minutes, for an account still active: a wrong verifier spends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_a_cli_code_is_redeemed_once_with_its_verifier_in_time_by_an_active_account() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = canopy_testkit::spawn_app(backend).await else { continue };
        app.user("ann").await;
        let redeem = |code: &str, verifier: &str| {
            let body = json!({"code": code, "verifier": verifier});
            app.request("POST", "/api/v1/auth/sso/token", None, Some(body))
        };
        let (code, verifier) = cli_grant(&app, "ann").await;
        redeem(&code, "not-the-verifier").await.expect_problem(401, None);
        redeem(&code, &verifier).await.expect_problem(401, None); // spent by the wrong try
        let (code, verifier) = cli_grant(&app, "ann").await;
        let token = redeem(&code, &verifier).await.expect(200).body["token"].as_str().unwrap().to_owned();
        assert_eq!(app.get("/api/v1/me", &token).await.expect(200).body["name"], "ann");
        redeem(&code, &verifier).await.expect_problem(401, None); // once
        let (code, verifier) = cli_grant(&app, "ann").await;
        app.clock.advance(Duration::minutes(3));
        redeem(&code, &verifier).await.expect_problem(401, None); // too late
        let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
        let (code, verifier) = cli_grant(&app, "ann").await;
        app.patch("/api/v1/users/ann", &admin, json!({"active": false})).await.expect(200);
        redeem(&code, &verifier).await.expect_problem(401, None); // deactivated meanwhile
    }
}

/// An address a local account holds is never linked to a person the
/// provider signs in: the sign-in is refused with a message for an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_an_address_a_local_account_holds_is_not_linked() {
    both(async |app: TestApp| {
        let Some(browser) = browser().await else { return };
        // a local account with the address the provider gives its `ann`
        let local = json!({"username": "ann-local", "email": "ann@example.org", "first_name": "Ann",
                           "last_name": "Local", "password": "password-of-ann-local"});
        app.post("/api/v1/users", &app.admin_token, local).await.expect(201);
        let page = browser.open(Viewport::Desktop).await;
        sign_in_at_the_provider(&page, &app, "ann").await;
        page.wait_for_text("exists already and was not made by this identity provider").await;
        app.get("/api/v1/users/ann", &app.admin_token).await.expect(404);
        page.close().await;
    })
    .await;
}

/// ID1 with ID2: the account SCIM provisioned becomes the person's at their
/// first sign-in, when the provider names them as SCIM did (the subject is
/// its `externalId`, or the `preferred_username` its `userName` with the
/// address the provider verified), never by e-mail alone; the address SCIM
/// gave claims its invitations; an account linked already is not taken over
/// by another subject of the same name, nor a user name alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_id2_the_first_sign_in_takes_the_account_scim_provisioned() {
    both(async |app: TestApp| {
        let Some(browser) = browser().await else { return };
        let made = app
            .post("/api/v1/api-keys", &app.admin_token, json!({"name": "idp", "role": "scim_provisioner"}))
            .await
            .expect(201);
        let key = made.body["secret"].as_str().unwrap().to_owned();
        let provision = async |user_name: &str, external_id: &str, email: &str| {
            let u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name,
                "externalId": external_id, "emails": [{"value": email, "primary": true}], "active": true});
            app.request("POST", "/scim/v2/Users", Some(&key), Some(u)).await.expect(201);
        };
        // Okta's way: externalId is the subject; Entra's: userName is the UPN
        provision("dora@corp.example", "dora", "dora@corp.example").await;
        provision("carl", "00u-entra-object-id", "carl@example.org").await;
        provision("frank", "00u-frank", "frank@corp.example").await;
        // Entra's way when its object id is mapped to externalId: the token's `oid`
        provision("gail@corp.example", "oid-gail", "gail@corp.example").await;
        app.workspace(&app.admin_token, "team-c").await;
        let invite = json!({"email": "carl@example.org", "role": "workspace_member"});
        app.post("/api/v1/workspaces/team-c/members", &app.admin_token, invite).await.expect(201);

        for (login, username) in [("dora", "dora"), ("carl", "carl"), ("gail", "gail")] {
            let page = browser.open(Viewport::Desktop).await;
            sign_in_at_the_provider(&page, &app, login).await;
            page.wait_for_text(&format!("Welcome, {username}")).await;
            page.close().await;
        }
        // no account was made besides those SCIM made
        let users = app.get("/api/v1/users?q=example.org", &app.admin_token).await.expect(200);
        let emails: Vec<&str> =
            users.body["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert_eq!(emails, vec!["carl@example.org"]);
        assert!(
            members(&app, "team-c").await.contains(&"user:carl".to_owned()),
            "SCIM's address claimed the invitation"
        );
        let linked = app.get("/api/v1/admin/history?kind=identity_linked", &app.admin_token).await.expect(200);
        let by: Vec<(Value, Value)> = linked.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["details"]["user"].clone(), e["details"]["matched_by"].clone()))
            .collect();
        assert_eq!(
            by,
            vec![
                (json!("gail"), json!("externalId")),
                (json!("carl"), json!("userName")),
                (json!("dora"), json!("externalId"))
            ]
        );

        // another subject with carl's preferred_username does not take carl's account
        let page = browser.open(Viewport::Desktop).await;
        sign_in_at_the_provider(&page, &app, "brief-carl").await;
        page.wait_for_text("signs in through this identity provider as another person already").await;
        page.close().await;
        // a user name alone links nothing: the provider vouches for another address than frank's
        let page = browser.open(Viewport::Desktop).await;
        sign_in_at_the_provider(&page, &app, "frank").await;
        page.wait_for_text("did not vouch for its e-mail address frank@corp.example").await;
        page.close().await;
        let users = app.get("/api/v1/users?q=frank", &app.admin_token).await.expect(200);
        assert_eq!(users.body["items"].as_array().unwrap().len(), 1, "no second account for frank");
    })
    .await;
}

/// The claims a [`Forger`] signs into the next ID token it hands out.
#[derive(Debug, Clone)]
struct Forged {
    audience: String,
    nonce: String,
}

/// A provider of the test's own making, for what a real one never sends:
/// an ID token for another client, or one without the sign-in's nonce. It
/// signs RS256 with a key of its own, which it publishes, so that only the
/// claims are wrong.
struct Forger {
    issuer: String,
    next: std::sync::Arc<std::sync::Mutex<Option<Forged>>>,
}

/// A [`Forger`] listening on loopback; its key is made by Node.js, which
/// the provider fixture needs too (`None` without the fixture).
async fn forger() -> Option<Forger> {
    use openidconnect::PrivateSigningKey;
    use openidconnect::core::{
        CoreGenderClaim, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
    };
    use openidconnect::{
        Audience, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, JsonWebKeyId, Nonce, StandardClaims,
        SubjectIdentifier,
    };
    oidc_provider()?;
    let script = "const {privateKey} = require('crypto').generateKeyPairSync('rsa', {modulusLength: 2048}); \
                  process.stdout.write(privateKey.export({type: 'pkcs1', format: 'pem'}))";
    let made = tokio::process::Command::new("node").args(["-e", script]).output().await.unwrap();
    assert!(made.status.success(), "node made no key: {}", String::from_utf8_lossy(&made.stderr));
    let pem = String::from_utf8(made.stdout).unwrap();
    let key = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new("forged".into()))).unwrap();
    let jwks = json!({"keys": [serde_json::to_value(key.as_verification_key()).unwrap()]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let next = std::sync::Arc::new(std::sync::Mutex::new(None::<Forged>));
    let (signer, iss) = (std::sync::Arc::new(key), issuer.clone());
    let token = {
        let next = next.clone();
        move || {
            let forged = next.lock().unwrap().clone().expect("a test sets the claims first");
            let at = chrono::DateTime::from_timestamp(canopy_testkit::START.unix_timestamp(), 0).unwrap();
            let person = StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new("forged-person".into()))
                .set_email(Some(EndUserEmail::new("forged@example.org".into())))
                .set_email_verified(Some(true));
            let claims = CoreIdTokenClaims::new(
                IssuerUrl::new(iss.clone()).unwrap(),
                vec![Audience::new(forged.audience)],
                at + chrono::Duration::minutes(10),
                at,
                person,
                EmptyAdditionalClaims {},
            )
            .set_nonce(Some(Nonce::new(forged.nonce)));
            let id_token =
                CoreIdToken::new(claims, signer.as_ref(), CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None)
                    .unwrap();
            let body = json!({"access_token": "forged", "token_type": "Bearer", "expires_in": 600,
                              "id_token": id_token.to_string()});
            async move { axum::Json(body) }
        }
    };
    let routes = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(discovery) }))
        .route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }))
        .route("/token", axum::routing::post(token));
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    Some(Forger { issuer, next })
}

/// An ID token for another client, or one that does not carry the nonce of
/// the sign-in it answers, signs nobody in; the same token with the right
/// audience and nonce does, so the refusals are the checks' own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id1_an_id_token_for_another_client_or_another_sign_in_is_refused() {
    let Some(forger) = forger().await else { return };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let settings = canopy_server::oidc::OidcSettings {
            issuer: forger.issuer.clone(),
            client_id: "canopy".into(),
            client_secret: "canopy-secret".into(),
            display_name: "Forger".into(),
        };
        let Some(app) = spawn_app_with(backend, |c| c.oidc = Some(settings)).await else { continue };
        let http = no_redirects();
        let attempt = async |audience: &str, nonce: Option<&str>| {
            let start = http.get(format!("{}/auth/oidc/login", app.base)).send().await.unwrap();
            let state = set_cookie(&start, "canopy_oidc").unwrap();
            let to = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
            let sent = to.query_pairs().find(|(k, _)| k == "nonce").map(|(_, v)| v.into_owned()).unwrap();
            let nonce = nonce.map_or(sent, str::to_owned);
            *forger.next.lock().unwrap() = Some(Forged { audience: audience.to_owned(), nonce });
            let back = http
                .get(format!("{}/auth/oidc/callback?code=any&state={state}", app.base))
                .header("cookie", format!("canopy_oidc={state}"))
                .send()
                .await
                .unwrap();
            let signed_in = set_cookie(&back, "canopy_session").is_some_and(|c| !c.is_empty());
            (back.status().as_u16(), signed_in, back.text().await.unwrap())
        };
        let (status, signed_in, body) = attempt("another-client", None).await;
        assert_eq!((status, signed_in), (401, false), "{body}");
        assert!(body.contains("ID token was refused"), "{body}");
        let (status, signed_in, body) = attempt("canopy", Some("the nonce of another sign-in")).await;
        assert_eq!((status, signed_in), (401, false), "{body}");
        assert!(body.contains("ID token was refused"), "{body}");
        let users = app.get("/api/v1/users?q=forged", &app.admin_token).await.expect(200);
        assert_eq!(users.body["items"], json!([]), "no account from a refused token");
        let (status, signed_in, body) = attempt("canopy", None).await;
        assert_eq!(
            (status, signed_in),
            (303, true),
            "the forger's tokens are good but for what the test broke: {body}"
        );
    }
}
