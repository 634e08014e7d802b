//! IF2: the web UI, driven in headless Chromium (`canopy_testkit::browser`)
//! and, for what a browser would never send (a forged or token-less form),
//! over plain HTTP. Each test runs on SQLite and on PostgreSQL and saves
//! screenshots of the pages it passes through under `target/screenshots/`.

use canopy_testkit::browser::{Page, Viewport, browser};
use canopy_testkit::{ADMIN_PASSWORD, TestApp, backend_tests};
use serde_json::{Value, json};

/// Sign in through the sign-in page and wait for the page it leads to.
async fn sign_in(page: &Page, app: &TestApp, username: &str, password: &str) {
    page.goto(&format!("{}/login", app.base)).await;
    page.fill("username", username).await;
    page.fill("password", password).await;
    page.click_button("Sign in").await;
    page.wait_for("header.top").await;
}

fn shot(app: &TestApp, name: &str) -> String {
    format!("{name}-{}", format!("{:?}", app.backend).to_lowercase())
}

/// A signed-in session of the web UI over plain HTTP: its cookie header and
/// its CSRF token, as a browser would hold them.
async fn http_session(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client.get(format!("{}/login", app.base)).send().await.unwrap();
    let login_cookie = cookie_of(&login, "canopy_login").unwrap();
    let signed_in = client
        .post(format!("{}/login", app.base))
        .header("cookie", format!("canopy_login={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", login_cookie.as_str()), ("username", username), ("password", password), ("next", "/")]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "signing in as {username}");
    let cookie = format!("canopy_session={}", cookie_of(&signed_in, "canopy_session").unwrap());
    let home =
        client.get(format!("{}/", app.base)).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let csrf = home.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

/// A form body, `application/x-www-form-urlencoded`.
fn encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
}

/// POST a form of the web UI with the session's cookie.
async fn post_form(app: &TestApp, cookie: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(fields))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

backend_tests!(
    if2_sign_in_says_why_it_failed_and_keeps_the_session_in_a_safe_cookie,
    if2_a_post_without_the_csrf_token_is_refused,
    if2_a_member_sees_no_manager_controls_and_a_forged_post_is_refused,
    if2_a_display_name_with_a_script_is_shown_as_text,
    if2_ws3_ac1_invite_with_the_type_ahead_bind_with_role_and_expiry_then_remove,
    if2_pr1_a_project_is_created_with_its_problems_shown_next_to_the_field,
    if2_ac8_expired_access_shows_soon_then_expired_and_extends_in_place,
    if2_fe3_hi2_emergency_users_guide_end_to_end,
    if2_pr2_tn3_dl2_the_project_page_end_to_end_on_keystone,
    if2_ad3_ad4_emergency_grant_and_revoke_with_a_receipt_that_fills_in,
    if2_id1_id2_fe1_hi3_admin_users_groups_settings_and_verification,
    if2_tn1_ad5_dl3_dl5_platform_registration_and_manual_deletion,
    if2_tn1_tn6_a_google_cloud_platform_is_registered_by_pasting_its_key_file,
    if2_ac4_pr3_pm1_roles_tags_and_payment_methods,
    if2_ad5_a_platform_engineer_reaches_the_platforms_not_the_admin_area,
    if2_dl4_a_project_with_automatic_and_manual_tenants_is_deleted_in_the_browser,
    if2_se6_ac12_profile_password_change_ends_every_session_and_notices_are_counted,
    if2_tn5_a_failed_tenant_says_when_canopy_tries_again,
);

/// A tenant whose platform cannot be reached shows its error and when it is
/// tried again, on the project's page and the tenant's (TN5).
async fn if2_tn5_a_failed_tenant_says_when_canopy_tries_again(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let platform = crate::tenants::unique("down");
    let down = json!({"identifier": platform, "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "unused"},
        "role_mapping": {"project_reader": "reader", "project_user": "member", "project_admin": "admin"}});
    app.post("/api/v1/platforms", &app.admin_token, down).await.expect(201);
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.post(
        &format!("/api/v1/workspaces/{ws}/projects"),
        &app.admin_token,
        json!({"identifier": "shop", "display_name": "Shop"}),
    )
    .await
    .expect(201);
    let tenants = format!("/api/v1/workspaces/{ws}/projects/shop/tenants");
    app.post(&tenants, &app.admin_token, json!({"platform": platform})).await.expect(201);
    assert_eq!(app.replicate().await.failed, 1);
    let listed = app.get(&tenants, &app.admin_token).await.expect(200);
    let next = listed.body["items"][0]["next_attempt_at"].as_str().unwrap().to_owned();
    // the instant the page shows ("2026-12-07 08:45:05 UTC")
    let at = format!("{} {} UTC", &next[..10], &next[11..19]);

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/workspaces/{ws}/projects/shop", app.base)).await;
    page.wait_for("[data-status=failed]").await;
    let said = page.text("[data-next-attempt]").await;
    assert_eq!(said, format!("Canopy tries again at {at}."));
    assert!(page.body_text().await.contains("cannot reach Keystone"), "{}", page.body_text().await);
    page.screenshot(&shot(&app, "project-tenant-failed")).await;
    page.goto(&format!("{}/workspaces/{ws}/projects/shop/tenants/{platform}", app.base)).await;
    page.wait_for("[data-next-attempt]").await;
    assert_eq!(page.text("[data-next-attempt]").await, format!("Canopy tries again at {at}."));
    page.screenshot(&shot(&app, "tenant-failed")).await;
}

async fn if2_sign_in_says_why_it_failed_and_keeps_the_session_in_a_safe_cookie(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let page = browser.open(Viewport::Desktop).await;
    // a page needs a sign-in first, and comes back after it
    page.goto(&format!("{}/", app.base)).await;
    page.wait_for("form[action='/login']").await;
    assert!(page.url().await.contains("/login?next=%2F"), "{}", page.url().await);

    // a wrong password and an unknown user read alike
    page.fill("username", "admin").await;
    page.fill("password", "not-the-password").await;
    page.click_button("Sign in").await;
    page.wait_for("#login-error").await;
    let wrong_password = page.text("#login-error").await;
    assert_eq!(page.text("#username").await, "");
    page.screenshot(&shot(&app, "login-failed")).await;
    page.fill("username", "nobody-of-that-name").await;
    page.fill("password", "not-the-password").await;
    page.click_button("Sign in").await;
    page.wait_for("#login-error").await;
    assert_eq!(page.text("#login-error").await, wrong_password);
    assert!(wrong_password.contains("username or the password is wrong"), "{wrong_password}");

    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(page.url().await, format!("{}/", app.base));
    assert!(page.body_text().await.contains("Welcome, admin"));
    let cookie = page.cookie("canopy_session").await.expect("the session cookie");
    assert!(cookie.http_only, "the session cookie is HttpOnly");
    assert_eq!(cookie.same_site.as_deref(), Some("Lax"));
    page.screenshot(&shot(&app, "home-empty")).await;

    // sign-out ends the session on the server (SE6), not only the cookie
    let token = cookie.value.clone();
    app.get("/api/v1/me", &token).await.expect(200);
    page.click("details.menu summary").await;
    page.click_button("Sign out").await;
    page.wait_for_text("You are signed out.").await;
    app.get("/api/v1/me", &token).await.expect(401);
    page.close().await;
}

async fn if2_a_post_without_the_csrf_token_is_refused(app: TestApp) {
    let (cookie, csrf) = http_session(&app, "admin", ADMIN_PASSWORD).await;
    for fields in [
        vec![("identifier", "forged"), ("display_name", "Forged")],
        vec![("csrf", "not-the-token"), ("identifier", "forged"), ("display_name", "Forged")],
    ] {
        let (status, body) = post_form(&app, &cookie, "/", &fields).await;
        assert_eq!(status, 403);
        assert!(body.contains("This form was not accepted"), "{body}");
    }
    app.get("/api/v1/workspaces/forged", &app.admin_token).await.expect(404);
    // with the token, the same form works
    let (status, _) =
        post_form(&app, &cookie, "/", &[("csrf", &csrf), ("identifier", "forged"), ("display_name", "Fine")]).await;
    assert_eq!(status, 303);
    app.get("/api/v1/workspaces/forged", &app.admin_token).await.expect(200);
    // another session's token is not this one's
    app.user("mia").await;
    let (_, mias_csrf) = http_session(&app, "mia", "password-of-mia").await;
    let (status, _) =
        post_form(&app, &cookie, "/", &[("csrf", &mias_csrf), ("identifier", "other"), ("display_name", "Other")])
            .await;
    assert_eq!(status, 403);
}

async fn if2_a_member_sees_no_manager_controls_and_a_forged_post_is_refused(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.workspace(&app.admin_token, "team-a").await;
    app.project(&app.admin_token, "team-a", "web").await;
    app.user("mia").await;
    app.user("bob").await;
    app.invite(&app.admin_token, "team-a", "mia", "workspace_member").await;
    app.invite(&app.admin_token, "team-a", "bob", "workspace_member").await;

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "mia", "password-of-mia").await;
    page.goto(&format!("{}/workspaces/team-a/access", app.base)).await;
    page.wait_for_text("Current Access").await;
    assert!(page.body_text().await.contains("Bob Tester"));
    for control in ["form[action='/workspaces/team-a/access']", "select[name=role]", "a[href$='/remove']"] {
        assert!(!page.exists(control).await, "a member sees {control}");
    }
    page.screenshot(&shot(&app, "member-current-access")).await;
    page.goto(&format!("{}/workspaces/team-a/projects", app.base)).await;
    page.wait_for_text("Project web").await;
    assert!(!page.exists("form[action='/workspaces/team-a/projects']").await);
    page.goto(&format!("{}/workspaces/team-a/projects/web/access", app.base)).await;
    page.wait_for_text("Current Access").await;
    assert!(!page.exists("form[action='/workspaces/team-a/projects/web/access']").await);
    page.close().await;

    // the member's own session and token, posting what only managers may
    let (cookie, csrf) = http_session(&app, "mia", "password-of-mia").await;
    let (status, body) = post_form(
        &app,
        &cookie,
        "/workspaces/team-a/access",
        &[("csrf", &csrf), ("subject", "bob"), ("role", "workspace_owner")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Not allowed"), "{body}");
    let (status, _) = post_form(
        &app,
        &cookie,
        "/workspaces/team-a/projects/web/access",
        &[("csrf", &csrf), ("subject", "user:mia"), ("role", "project_admin")],
    )
    .await;
    assert_eq!(status, 403);
    let members = app.get("/api/v1/workspaces/team-a/members", &app.admin_token).await.expect(200);
    let bob = members.body["items"].as_array().unwrap().iter().find(|m| m["subject"] == "user:bob").unwrap().clone();
    assert_eq!(bob["role"], "workspace_member");
    let bindings = app.get("/api/v1/workspaces/team-a/projects/web/bindings", &app.admin_token).await.expect(200);
    assert_eq!(bindings.body["items"], json!([]));
}

async fn if2_a_display_name_with_a_script_is_shown_as_text(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let script = "<script>alert(1)</script>";
    app.workspace(&app.admin_token, "team-a").await;
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "eve", "email": "eve@example.org", "first_name": script, "last_name": "<b>Bold</b>",
               "password": "password-of-eve"}),
    )
    .await
    .expect(201);
    app.invite(&app.admin_token, "team-a", "eve", "workspace_member").await;
    app.patch(
        "/api/v1/workspaces/team-a",
        &app.admin_token,
        json!({"display_name": "Team <img src=x onerror=alert(2)>"}),
    )
    .await
    .expect(200);

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/workspaces/team-a/access", app.base)).await;
    page.wait_for_text("Current Access").await;
    let text = page.body_text().await;
    assert!(text.contains("<script>alert(1)</script> <b>Bold</b>"), "{text}");
    assert!(text.contains("Team <img src=x onerror=alert(2)>"), "{text}");
    // shown as text: no element was made of it, and no dialog opened
    assert!(!page.exists("main script").await);
    assert!(!page.exists("main img").await);
    assert!(!page.exists("main b").await);
    assert_eq!(page.dialogs(), Vec::<String>::new(), "a dialog opened");
    page.screenshot(&shot(&app, "escaped-names")).await;
    page.close().await;
}

async fn if2_ws3_ac1_invite_with_the_type_ahead_bind_with_role_and_expiry_then_remove(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.workspace(&app.admin_token, "team-a").await;
    app.project(&app.admin_token, "team-a", "web").await;
    app.user("ann").await;

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    // the switcher leads to the workspace
    page.select("ws", "team-a").await;
    page.wait_for_text("Create a project").await;
    page.click_link("Workspace Access").await;
    page.wait_for_text("Current Access").await;

    // at the bottom, type part of a name and choose the suggestion
    page.fill("subject", "An").await;
    page.wait_for("button.suggestion[data-value='user:ann']").await;
    page.screenshot(&shot(&app, "invite-type-ahead")).await;
    page.click("button.suggestion[data-value='user:ann']").await;
    page.select("#invite-role", "workspace_member").await;
    page.click_button("+ Invite").await;
    page.wait_for_text("Ann Tester was added as Workspace Member.").await;
    page.screenshot(&shot(&app, "workspace-current-access")).await;

    // an unknown address becomes an invitation
    page.fill("subject", "olga@example.org").await;
    page.wait_for("button.suggestion[data-value='olga@example.org']").await;
    page.click_button("+ Invite").await;
    page.wait_for_text("An invitation was sent to olga@example.org").await;

    // the project: Project Access, the type-ahead, a role and an expiration
    page.goto(&format!("{}/workspaces/team-a/projects", app.base)).await;
    page.click_link("Project web").await;
    page.wait_for_text("Tenants").await;
    page.click_link("Project Access").await;
    page.wait_for_text("Nobody is bound to this project yet.").await;
    page.fill("subject", "ann").await;
    page.wait_for("button.suggestion[data-value='user:ann']").await;
    page.click("button.suggestion[data-value='user:ann']").await;
    page.select("#add-role", "project_user").await;
    // a date in the past is refused next to its field, with what was typed kept
    page.set_value("#add-expires", "2020-01-01").await;
    page.click("button[aria-label='Add to the project']").await;
    page.wait_for("#add-expires-error").await;
    assert_eq!(page.value("#add-subject").await, "user:ann");
    page.screenshot(&shot(&app, "project-access-error")).await;
    page.set_value("#add-expires", "2026-11-27").await;
    page.click("button[aria-label='Add to the project']").await;
    page.wait_for_text("Ann Tester was added as Project User until 2026-11-27.").await;
    // four days before its end (the clock stands at 2026-11-23): yellow, and said in words
    page.wait_for("tr.soon").await;
    assert!(page.text("tr.soon").await.contains("expires in 3 days"), "{}", page.text("tr.soon").await);
    page.screenshot(&shot(&app, "project-access")).await;
    let bindings = app.get("/api/v1/workspaces/team-a/projects/web/bindings", &app.admin_token).await.expect(200);
    let b = &bindings.body["items"][0];
    assert_eq!(b["role"], "project_user");
    assert_eq!(b["expires_at"], "2026-11-27T00:00:00Z");

    // change the role and save
    let id = b["id"].as_str().unwrap();
    page.select(&format!("#role-{id}"), "project_admin").await;
    page.click("button[aria-label='Save the role and expiration of Ann Tester']").await;
    page.wait_for_text("Ann Tester now holds Project Admin until 2026-11-27.").await;
    assert_eq!(
        app.get("/api/v1/workspaces/team-a/projects/web/bindings", &app.admin_token).await.body["items"][0]["role"],
        "project_admin"
    );

    // remove from the project, after a confirmation naming person and project
    page.click(&format!("a[href$='/access/{id}/remove']")).await;
    page.wait_for_text("Remove Ann Tester (ann) as Project Admin from Project web?").await;
    page.click_button("Remove").await;
    page.wait_for_text("The binding was removed").await;
    assert_eq!(
        app.get("/api/v1/workspaces/team-a/projects/web/bindings", &app.admin_token).await.body["items"],
        json!([])
    );

    // and from the workspace
    page.goto(&format!("{}/workspaces/team-a/access", app.base)).await;
    page.click("a[aria-label='Remove Ann Tester from the workspace']").await;
    page.wait_for_text("Remove user:ann from Workspace team-a?").await;
    page.click_button("Remove").await;
    page.wait_for_text("user:ann was removed from the workspace.").await;
    let members = app.get("/api/v1/workspaces/team-a/members", &app.admin_token).await.expect(200);
    assert!(!members.body["items"].as_array().unwrap().iter().any(|m| m["subject"] == "user:ann"));
    page.close().await;
}

async fn if2_pr1_a_project_is_created_with_its_problems_shown_next_to_the_field(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.workspace(&app.admin_token, "team-a").await;
    app.post(
        "/api/v1/tag-definitions",
        &app.admin_token,
        json!({"key": "environment", "display_name": "Environment", "type": "single_select",
               "options": ["production", "staging"], "required": true}),
    )
    .await
    .expect(201);
    let method = app
        .post(
            "/api/v1/workspaces/team-a/payment-methods",
            &app.admin_token,
            json!({"name": "Cost centre 4711", "amount": 1000, "expires_on": "2027-12-31"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for (viewport, name) in [(Viewport::Desktop, "desktop"), (Viewport::Phone, "phone")] {
        let page = browser.open(viewport).await;
        sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
        page.goto(&format!("{}/workspaces/team-a/projects", app.base)).await;
        page.wait_for_text("Create a project").await;
        // an invalid identifier and a missing required tag, both named at their field
        page.fill("identifier", &format!("Web {name}")).await;
        page.fill("display_name", "Web shop").await;
        page.click_button("Create project").await;
        page.wait_for("#project-identifier-error").await;
        assert!(page.exists(".invalid #tag-environment").await, "the required tag is marked");
        assert!(!page.text("#project-identifier-error").await.is_empty());
        page.screenshot(&shot(&app, &format!("create-project-errors-{name}"))).await;
        // what was typed is kept
        assert_eq!(page.value("#project-name").await, "Web shop");
        page.fill("identifier", &format!("web-{name}")).await;
        page.select("tags.environment", "production").await;
        page.select("payment_method", &method).await;
        page.click_button("Create project").await;
        page.wait_for_text("Project Web shop was created.").await;
        page.screenshot(&shot(&app, &format!("project-overview-{name}"))).await;
        page.close().await;
        let p = app.get(&format!("/api/v1/workspaces/team-a/projects/web-{name}"), &app.admin_token).await.expect(200);
        assert_eq!(p.body["tags"]["environment"], "production");
        assert_eq!(p.body["payment_method"], method.as_str());
    }
}

async fn if2_ac8_expired_access_shows_soon_then_expired_and_extends_in_place(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.workspace(&app.admin_token, "team-a").await;
    app.project(&app.admin_token, "team-a", "web").await;
    app.user("ann").await;
    app.invite(&app.admin_token, "team-a", "ann", "workspace_member").await;
    app.post(
        "/api/v1/workspaces/team-a/projects/web/bindings",
        &app.admin_token,
        json!({"user": "ann", "role": "project_user", "expires_at": "2026-11-26T00:00:00Z"}),
    )
    .await
    .expect(201);

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/workspaces/team-a/projects", app.base)).await;
    page.click_link("Expired Access").await;
    page.wait_for("tr.soon").await;
    let row = page.text("tr.soon").await;
    assert!(row.contains("Ann Tester") && row.contains("Project User") && row.contains("expires in 2 days"), "{row}");
    page.screenshot(&shot(&app, "expired-access-soon")).await;

    // past its end: red, and said so
    app.clock.set(time::macros::datetime!(2026-11-28 09:00 UTC));
    page.goto(&format!("{}/workspaces/team-a/expired-access", app.base)).await;
    // five days unused: the session has ended (idle timeout), and signing in leads back
    page.wait_for("form[action='/login']").await;
    page.fill("username", "admin").await;
    page.fill("password", ADMIN_PASSWORD).await;
    page.click_button("Sign in").await;
    page.wait_for("tr.expired").await;
    assert!(page.text("tr.expired").await.contains("expired 2 days ago"), "{}", page.text("tr.expired").await);
    page.screenshot(&shot(&app, "expired-access-expired")).await;

    // extended in place: off the list, and in force until then
    page.set_value("input[name=expires_on]", "2027-01-31").await;
    page.click("button[aria-label='Extend the access of Ann Tester on web']").await;
    page.wait_for_text("Ann Tester now holds Project User until 2027-01-31.").await;
    assert!(page.url().await.ends_with("/workspaces/team-a/expired-access"));
    assert!(page.body_text().await.contains("No binding of this workspace has expired recently"));
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let b = app.get("/api/v1/workspaces/team-a/projects/web/bindings", &admin).await.expect(200);
    assert_eq!(b.body["items"][0]["expires_at"], "2027-01-31T00:00:00Z");
    page.close().await;
}

/// The seeds' emergency-users guide, step by step in the browser: a manager
/// invites the person at the bottom of Current Access and adds them to a
/// project with a role and an expiration date; with four-eye on, an admin
/// approves from Administration → Workspaces → User Pending Role Requests;
/// the person is removed from the project and from the workspace; and
/// Workspace History shows each step, with Details.
async fn if2_fe3_hi2_emergency_users_guide_end_to_end(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.patch("/api/v1/settings", &app.admin_token, json!({"four_eye": {"enabled": true, "approvals": 1}}))
        .await
        .expect(200);
    let mia = app.user("mia").await;
    app.workspace(&mia, "team-a").await;
    app.project(&mia, "team-a", "web").await;
    app.user("erin").await;

    // the workspace manager: invite, then bind with an expiration (a request)
    let manager = browser.open(Viewport::Desktop).await;
    sign_in(&manager, &app, "mia", "password-of-mia").await;
    manager.goto(&format!("{}/workspaces/team-a/access", app.base)).await;
    manager.fill("subject", "eri").await;
    manager.wait_for("button.suggestion[data-value='user:erin']").await;
    manager.click("button.suggestion[data-value='user:erin']").await;
    manager.click_button("+ Invite").await;
    manager.wait_for_text("Erin Tester was added as Workspace Member.").await;
    manager.goto(&format!("{}/workspaces/team-a/projects", app.base)).await;
    manager.click_link("Project web").await;
    manager.click_link("Project Access").await;
    manager.fill("subject", "erin").await;
    manager.wait_for("button.suggestion[data-value='user:erin']").await;
    manager.click("button.suggestion[data-value='user:erin']").await;
    manager.select("role", "project_admin").await;
    manager.set_value("#add-expires", "2026-11-30").await;
    // four-eye asks why
    manager.click("button[aria-label='Add to the project']").await;
    manager.wait_for("#add-justification-error").await;
    assert_eq!(manager.value("#add-subject").await, "user:erin");
    manager.fill("justification", "incident 42").await;
    manager.click("button[aria-label='Add to the project']").await;
    manager.wait_for_text("Adding this binding waits for approval by another manager (or an admin).").await;
    manager.wait_for_text("erin (pending approval: add Project Admin, asked by mia, “incident 42”)").await;
    manager.screenshot(&shot(&app, "project-access-pending")).await;
    manager.click_link("Pending Requests").await;
    manager.wait_for_text("your request: others decide").await;

    // the admin approves it alone from the admin area
    let admin = browser.open(Viewport::Desktop).await;
    sign_in(&admin, &app, "admin", ADMIN_PASSWORD).await;
    admin.click("details.menu summary").await;
    admin.click_link("Administration").await;
    admin.wait_for_text("Workspaces").await;
    admin.screenshot(&shot(&app, "admin-workspaces")).await;
    admin.click("a[aria-label='User Pending Role Requests of team-a']").await;
    admin.wait_for_text("incident 42").await;
    admin.screenshot(&shot(&app, "pending-requests")).await;
    admin.click("button[aria-label='Approve the request for erin on web']").await;
    admin.wait_for_text("The request for erin was approved and applied.").await;
    let bindings = app.get("/api/v1/workspaces/team-a/projects/web/bindings", &mia).await.expect(200);
    let b = &bindings.body["items"][0];
    assert_eq!((b["subject"].as_str(), b["role"].as_str()), (Some("user:erin"), Some("project_admin")));
    let id = b["id"].as_str().unwrap().to_owned();

    // removal from the project (a request too, approved by the admin), then from the workspace
    manager.goto(&format!("{}/workspaces/team-a/projects/web/access", app.base)).await;
    manager.click(&format!("a[href$='/access/{id}/remove']")).await;
    manager.wait_for_text("Remove Erin Tester (erin) as Project Admin from Project web?").await;
    manager.fill("justification", "incident 42 is over").await;
    manager.click_button("Remove").await;
    manager.wait_for_text("Removing this binding waits for approval").await;
    admin.goto(&format!("{}/workspaces/team-a/requests", app.base)).await;
    admin.click("button[aria-label='Approve the request for erin on web']").await;
    admin.wait_for_text("The request for erin was approved and applied.").await;
    assert_eq!(app.get("/api/v1/workspaces/team-a/projects/web/bindings", &mia).await.body["items"], json!([]));
    manager.goto(&format!("{}/workspaces/team-a/access", app.base)).await;
    manager.click("a[aria-label='Remove Erin Tester from the workspace']").await;
    manager.click_button("Remove").await;
    manager.wait_for_text("user:erin was removed from the workspace.").await;
    manager.close().await;

    // Workspace History from the admin area: every step, newest first, with Details
    admin.goto(&format!("{}/admin/workspaces", app.base)).await;
    admin.click("a[aria-label='Workspace History of team-a']").await;
    admin.wait_for_text("Workspace History").await;
    let history = admin.text("tbody").await;
    let steps = [
        "member_removed",
        "binding_removed",
        "role_request_approved",
        "binding_created",
        "role_request_created",
        "member_added",
    ];
    let mut at = 0;
    for step in steps {
        let found =
            history[at..].find(step).unwrap_or_else(|| panic!("{step} is missing after position {at}:\n{history}"));
        at += found + step.len();
    }
    admin.screenshot(&shot(&app, "workspace-history")).await;
    // filter by kind, then open the details of the invitation
    admin.select("kind", "member_added").await;
    admin.click_button("Filter").await;
    admin.wait_for("select[name=kind] option[value=member_added][selected]").await;
    let rows = admin.text("tbody").await;
    assert!(rows.contains("member_added") && !rows.contains("binding_removed"), "{rows}");
    admin.click("a[aria-label^='Details of member_added']").await;
    admin.wait_for_text("Event member_added").await;
    let details = admin.body_text().await;
    assert!(details.contains("user:erin") && details.contains("by mia"), "{details}");
    admin.screenshot(&shot(&app, "history-details")).await;
    admin.close().await;
}

/// The meshProject page on a real platform (Keystone): create a project, add
/// a tenant through the dropdown and "+", watch it reach succeeded, set the
/// payment method and its substitute, bind a person and a group with the
/// type-ahead, read the tenant's plan, and delete the project (automatic
/// deletion: confirmed by typing its identifier).
async fn if2_pr2_tn3_dl2_the_project_page_end_to_end_on_keystone(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let Some(os) = crate::tenants::Os::get() else { return };
    let platform = crate::tenants::unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    app.patch("/api/v1/settings", &app.admin_token, json!({"payment_substitutes": true})).await.expect(200);
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    for (name, until) in [("Cost centre 4711", "2026-12-31"), ("Cost centre 4712", "2027-12-31")] {
        app.post(
            &format!("/api/v1/workspaces/{ws}/payment-methods"),
            &app.admin_token,
            json!({"name": name, "amount": 1000, "expires_on": until}),
        )
        .await
        .expect(201);
    }
    app.user("ann").await;
    app.user("bob").await;
    let group = crate::tenants::unique("devs");
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": group, "display_name": "Developers"}))
        .await
        .expect(201);
    app.post(&format!("/api/v1/groups/{group}/members"), &app.admin_token, json!({"user": "bob"})).await.expect(201);
    app.invite(&app.admin_token, &ws, "ann", "workspace_member").await;
    app.post(
        &format!("/api/v1/workspaces/{ws}/members"),
        &app.admin_token,
        json!({"group": group, "role": "workspace_member"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/tag-definitions",
        &app.admin_token,
        json!({"key": "cost-centre", "display_name": "Cost centre", "type": "string", "pattern": "[0-9]{4}"}),
    )
    .await
    .expect(201);

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/workspaces/{ws}/projects", app.base)).await;
    page.fill("identifier", "shop").await;
    page.fill("display_name", "Shop").await;
    page.click_button("Create project").await;
    page.wait_for_text("Project Shop was created.").await;

    // a tenant through the dropdown and "+", replicated to Keystone
    page.select("platform", &platform).await;
    page.click("button[aria-label='Add the tenant']").await;
    page.wait_for_text(&format!("A tenant on {platform} was added")).await;
    assert!(page.exists("[data-status=pending]").await, "a new tenant waits for replication");
    assert!(page.body_text().await.contains("Replication is under way"));
    // the open page follows the replication by itself (IF4)
    app.replicate().await;
    page.wait_for("[data-status=succeeded]").await;
    assert!(!page.body_text().await.contains("Replication is under way"));
    assert!(
        !page.exists(&format!("select[name=platform] option[value='{platform}']")).await,
        "a second tenant is not offered"
    );

    // payment method and substitute
    let methods = app.get(&format!("/api/v1/workspaces/{ws}/payment-methods"), &app.admin_token).await.expect(200);
    let id_of = |name: &str| {
        methods.body["items"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    page.select("payment_method", &id_of("Cost centre 4711")).await;
    page.select("substitute_payment_method", &id_of("Cost centre 4711")).await;
    page.click_button("Save payment").await;
    page.wait_for(".invalid #payment-substitute").await;
    page.select("substitute_payment_method", &id_of("Cost centre 4712")).await;
    page.click_button("Save payment").await;
    page.wait_for_text("The payment method was saved.").await;

    // tags as their definitions say: a value off the pattern is named at its field
    page.fill("tags.cost-centre", "abc").await;
    page.click_button("Save tags").await;
    page.wait_for(".invalid #tag-cost-centre").await;
    assert_eq!(page.value("#tag-cost-centre").await, "abc");
    page.fill("tags.cost-centre", "4711").await;
    page.click_button("Save tags").await;
    page.wait_for_text("The tags were saved.").await;
    let shop = app.get(&format!("/api/v1/workspaces/{ws}/projects/shop"), &app.admin_token).await.expect(200);
    assert_eq!(shop.body["tags"]["cost-centre"], "4711");
    page.screenshot(&shot(&app, "project-overview-tenant")).await;

    // a person and a group with the type-ahead
    page.click_link("Project Access").await;
    for (typed, value, role) in
        [("ann", "user:ann".to_owned(), "project_user"), ("Develop", format!("group:{group}"), "project_reader")]
    {
        page.fill("subject", typed).await;
        page.wait_for(&format!("button.suggestion[data-value='{value}']")).await;
        page.click(&format!("button.suggestion[data-value='{value}']")).await;
        page.select("#add-role", role).await;
        page.click("button[aria-label='Add to the project']").await;
        page.wait_for_text("was added as").await;
    }
    assert!(page.body_text().await.contains("group: Developers"));

    // a second role for the same person (AC2), then an expiration set on the first and saved
    page.fill("subject", "ann").await;
    page.wait_for("button.suggestion[data-value='user:ann']").await;
    page.click("button.suggestion[data-value='user:ann']").await;
    page.select("#add-role", "project_admin").await;
    page.click("button[aria-label='Add to the project']").await;
    page.wait_for_text("was added as Project Admin").await;
    let bindings =
        app.get(&format!("/api/v1/workspaces/{ws}/projects/shop/bindings"), &app.admin_token).await.expect(200);
    let of_ann: Vec<&Value> =
        bindings.body["items"].as_array().unwrap().iter().filter(|b| b["subject"] == "user:ann").collect();
    assert_eq!(of_ann.len(), 2, "{}", bindings.body);
    let user_role = of_ann.iter().find(|b| b["role"] == "project_user").unwrap()["id"].as_str().unwrap().to_owned();
    page.set_value(&format!("#expires-{user_role}"), "2027-03-31").await;
    page.click(&format!("form[action$='/access/{user_role}'] button[type=submit]")).await;
    page.wait_for_text("now holds Project User until 2027-03-31.").await;
    let bindings =
        app.get(&format!("/api/v1/workspaces/{ws}/projects/shop/bindings"), &app.admin_token).await.expect(200);
    let saved = bindings.body["items"].as_array().unwrap().iter().find(|b| b["id"] == user_role.as_str()).cloned();
    assert_eq!(saved.unwrap()["expires_at"], "2027-03-31T00:00:00Z");
    app.replicate().await;

    // the tenant page: the plan has nothing left to do
    page.goto(&format!("{}/workspaces/{ws}/projects/shop/tenants/{platform}", app.base)).await;
    page.wait_for_text("Replication plan").await;
    page.wait_for_text("Nothing would change now").await;
    assert!(page.body_text().await.contains("holds 3 assignment(s)"), "{}", page.body_text().await);
    page.screenshot(&shot(&app, "tenant-page")).await;

    // deletion: requested, a wrong identifier refused at its field, then confirmed
    page.click_link("Deletion").await;
    page.click_button("Delete this project").await;
    page.wait_for_text("The deletion was requested.").await;
    page.fill("identifier", "not-shop").await;
    page.click_button("Delete for good").await;
    page.wait_for("#confirm-identifier-error").await;
    assert_eq!(page.value("#confirm-identifier").await, "not-shop");
    page.screenshot(&shot(&app, "deletion-wrong-identifier")).await;
    page.fill("identifier", "shop").await;
    page.click_button("Delete for good").await;
    page.wait_for_text("The deletion was confirmed").await;
    assert!(page.text(&format!("[data-deletion='{platform}']")).await.contains("being deleted by Canopy"));
    app.replicate().await;
    app.get(&format!("/api/v1/workspaces/{ws}/projects/shop"), &app.admin_token).await.expect(404);
    page.goto(&format!("{}/workspaces/{ws}/projects", app.base)).await;
    page.wait_for_text("This workspace has no projects yet.").await;
    page.close().await;
}

/// Administration → Emergency Access on a real platform: one form grants a
/// person a role until a date; one action, confirmed by typing the
/// username, revokes everything, and the receipt fills in by itself as the
/// platform confirms the removal (IF4).
async fn if2_ad3_ad4_emergency_grant_and_revoke_with_a_receipt_that_fills_in(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let Some(os) = crate::tenants::Os::get() else { return };
    let platform = crate::tenants::unique("os");
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "ops").await;
    app.post(&format!("/api/v1/workspaces/{ws}/projects/ops/tenants"), &app.admin_token, json!({"platform": platform}))
        .await
        .expect(201);
    app.replicate().await;
    app.user("dana").await;

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/admin/workspaces", app.base)).await;
    page.click_link("Emergency Access").await;
    // what is missing is said at each field
    page.click_button("Grant emergency access").await;
    page.wait_for("#grant-person-error").await;
    page.screenshot(&shot(&app, "emergency-errors")).await;
    page.fill("person", "dana").await;
    page.select("workspace", &ws).await;
    page.fill("project", "ops").await;
    page.select("role", "project_admin").await;
    page.set_value("#grant-expires", "2026-11-24").await;
    page.fill("justification", "incident 7").await;
    page.click_button("Grant emergency access").await;
    page.wait_for_text("Emergency access: dana holds project_admin on ops until 2026-11-24").await;
    app.replicate().await;
    page.goto(&format!("{}/workspaces/{ws}/projects/ops", app.base)).await;
    page.wait_for("[data-status=succeeded]").await;

    // revoke: a mistyped confirmation is refused, then the receipt
    page.goto(&format!("{}/admin/emergency", app.base)).await;
    // (both forms have a person field: the revoke form's by its id)
    page.set_value("#revoke-person", "dana").await;
    page.set_value("#revoke-confirm", "dan").await;
    page.click_button("Revoke all access").await;
    page.wait_for("#revoke-confirm-error").await;
    assert_eq!(page.value("#revoke-person").await, "dana");
    assert_eq!(app.get("/api/v1/users/dana", &app.admin_token).await.body["active"], true);
    page.set_value("#revoke-confirm", "dana").await;
    page.set_value("#revoke-justification", "account compromised").await;
    page.click_button("Revoke all access").await;
    page.wait_for_text("dana's access was revoked and the account deactivated.").await;
    page.wait_for_text("waiting for the platform").await;
    page.screenshot(&shot(&app, "revocation-waiting")).await;
    // the platform confirms; the open page fills in by itself
    app.replicate().await;
    page.wait_for(&format!("[data-confirmed='{platform}']")).await;
    page.wait_for_text("Every platform confirmed the removal.").await;
    page.screenshot(&shot(&app, "revocation-confirmed")).await;
    assert_eq!(app.get("/api/v1/users/dana", &app.admin_token).await.body["active"], false);
    page.close().await;
}

/// The admin area's Users, Groups and Settings, and the history's verification.
async fn if2_id1_id2_fe1_hi3_admin_users_groups_settings_and_verification(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/admin/users", app.base)).await;

    // a local account: problems at their fields, what was typed kept (not the password)
    page.fill("username", "Kim Lee").await;
    page.fill("email", "kim@example.org").await;
    page.fill("first_name", "Kim").await;
    page.fill("last_name", "Lee").await;
    page.fill("password", "short").await;
    page.click_button("Create account").await;
    page.wait_for("#user-username-error").await;
    assert!(page.exists("#user-password-error").await);
    assert_eq!(page.value("#user-first").await, "Kim");
    assert_eq!(page.value("#user-password").await, "");
    page.screenshot(&shot(&app, "admin-users-errors")).await;
    page.fill("username", "kim").await;
    page.fill("password", "a-long-enough-password").await;
    page.click_button("Create account").await;
    page.wait_for_text("The account kim was created.").await;
    app.sign_in("kim", "a-long-enough-password").await;

    // the account's own page: names, e-mail and installation roles changed
    page.click_link("kim").await;
    page.wait_for("#account-email").await;
    assert!(page.body_text().await.contains("with a password"), "how the account signs in");
    page.fill("email", "").await;
    page.fill("first_name", "Kimberly").await;
    page.click_button("Save the account").await;
    page.wait_for("#account-email-error").await;
    assert_eq!(page.value("#account-first").await, "Kimberly", "what was typed is kept");
    assert_eq!(app.get("/api/v1/users/kim", &app.admin_token).await.body["first_name"], "Kim", "nothing half written");
    page.fill("email", "kim.lee@example.org").await;
    page.check("platform_engineer").await;
    page.click_button("Save the account").await;
    page.wait_for_text("The account kim was saved.").await;
    let kim = app.get("/api/v1/users/kim", &app.admin_token).await.expect(200);
    assert_eq!(kim.body["first_name"], "Kimberly");
    assert_eq!(kim.body["email"], "kim.lee@example.org");
    assert_eq!(kim.body["installation_roles"], json!(["platform_engineer"]));
    page.screenshot(&shot(&app, "admin-account")).await;
    page.click_button("Sign out everywhere").await;
    page.wait_for_text("1 session of kim ended.").await;
    page.click_link("Users").await;

    // search, then deactivate: the account's access and sessions end
    page.fill("q", "lee").await;
    page.click_button("Search").await;
    page.wait_for("button[aria-label='Deactivate kim']").await;
    assert!(!page.text("tbody").await.contains("admin@"), "the search narrows the list");
    page.click("button[aria-label='Deactivate kim']").await;
    page.wait_for_text("The account kim was deactivated").await;
    assert_eq!(app.get("/api/v1/users/kim", &app.admin_token).await.body["active"], false);

    // a group and its members
    page.click_link("Groups").await;
    page.fill("identifier", "ops").await;
    page.fill("display_name", "Operations").await;
    page.click_button("Create group").await;
    page.wait_for_text("The group Operations was created.").await;
    page.fill("user", "nobody-here").await;
    page.click_button("Add").await;
    page.wait_for("#member-user-error").await;
    page.fill("user", "admin").await;
    page.click_button("Add").await;
    page.wait_for_text("admin joined the group.").await;
    let members = app.get("/api/v1/groups/ops/members", &app.admin_token).await.expect(200);
    assert_eq!(members.body["items"][0]["username"], "admin");
    page.click("button[aria-label='Remove admin from the group']").await;
    page.wait_for_text("admin left the group.").await;
    page.fill("display_name", "Operations team").await;
    page.click_button("Rename").await;
    page.wait_for_text("The group is now called Operations team.").await;
    page.click_button("Remove the group").await;
    page.wait_for_text("The group ops was removed.").await;
    app.get("/api/v1/groups/ops", &app.admin_token).await.expect(404);

    // what the identity provider provisioned (SCIM) is shown, not changed here
    let key = app
        .post("/api/v1/api-keys", &app.admin_token, json!({"name": "entra", "role": "scim_provisioner"}))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let dana = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dana@corp.example",
        "name": {"givenName": "Dana", "familyName": "Scim"}, "emails": [{"value": "dana@corp.example"}]});
    let dana = app.request("POST", "/scim/v2/Users", Some(&key), Some(dana)).await.expect(201);
    let sre = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "SRE on call",
        "members": [{"value": dana.body["id"]}]});
    app.request("POST", "/scim/v2/Groups", Some(&key), Some(sre)).await.expect(201);
    page.click_link("Groups").await;
    page.wait_for_text("identity provider").await;
    page.screenshot(&shot(&app, "admin-groups-provisioned")).await;
    page.click_link("SRE on call").await;
    page.wait_for_text("Your identity provider manages this group through SCIM").await;
    assert!(page.body_text().await.contains("dana"), "its members are shown");
    assert!(!page.exists("#group-rename").await && !page.exists("#member-user").await, "and offered no change");
    page.screenshot(&shot(&app, "admin-group-provisioned")).await;
    page.goto(&format!("{}/admin/users/dana", app.base)).await;
    page.wait_for_text("by the identity provider (SCIM)").await;
    assert!(!page.exists("#account-email").await, "the address is the provider's");
    page.click_button("Save the account").await;
    page.wait_for_text("The account dana was saved.").await;
    page.screenshot(&shot(&app, "admin-account-provisioned")).await;

    // settings: four-eye with a bad number, then two approvals
    page.click_link("Settings").await;
    page.check("four_eye").await;
    page.fill("approvals", "0").await;
    page.click_button("Save settings").await;
    page.wait_for("#set-approvals-error").await;
    page.fill("approvals", "2").await;
    page.click_button("Save settings").await;
    page.wait_for_text("The settings were saved.").await;
    let settings = app.get("/api/v1/settings", &app.admin_token).await.expect(200);
    assert_eq!(settings.body["four_eye"], json!({"enabled": true, "approvals": 2}));
    page.screenshot(&shot(&app, "admin-settings")).await;

    // the history verifies
    page.click_button("Verify the history").await;
    page.wait_for("#verify-result").await;
    assert!(
        page.text("#verify-result").await.starts_with("Every chain holds"),
        "{}",
        page.text("#verify-result").await
    );
    page.close().await;
}

/// TN1, TN6 in the browser: a Google Cloud platform registered by pasting
/// its CA certificate and its service-account key file as they come, over
/// several lines (the form reads KEY=VALUE lines); a tenant on it is then
/// made on the platform (the Google Cloud fake).
async fn if2_tn1_tn6_a_google_cloud_platform_is_registered_by_pasting_its_key_file(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let Some([url, ca, key, folder]) = canopy_testkit::component(
        ["CANOPY_TEST_GCP_URL", "CANOPY_TEST_GCP_CA", "CANOPY_TEST_GCP_KEY", "CANOPY_TEST_GCP_FOLDER"],
        "Google Cloud fake",
    ) else {
        return;
    };
    let ca = std::fs::read_to_string(ca).unwrap();
    // pretty-printed, as Google's console hands a key file out
    let key: Value = serde_json::from_str(&std::fs::read_to_string(key).unwrap()).unwrap();
    let key = serde_json::to_string_pretty(&key).unwrap();
    let platform = crate::tenants::unique("gcp");
    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/admin/platforms", app.base)).await;
    page.fill("identifier", &platform).await;
    page.select("type", "gcp").await;
    let settings = format!("parent={folder}\ncrm_url={url}\nasset_url={url}\nca_cert={}", ca.trim());
    page.set_value("#platform-settings", &settings).await;
    page.set_value("#platform-secrets", &format!("service_account_key={key}")).await;
    page.set_value("#platform-role_mapping", "project_user=roles/editor").await;
    page.screenshot(&shot(&app, "register-gcp-platform")).await;
    page.click_button("Register platform").await;
    page.wait_for_text(&format!("The platform {platform} was registered.")).await;
    assert!(!page.body_text().await.contains("PRIVATE KEY"), "a secret is never shown");
    let p = app.get(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect(200);
    assert_eq!(p.body["settings"]["ca_cert"].as_str().map(str::trim), Some(ca.trim()), "{}", p.body);

    // the key works: a tenant on the platform is made there
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    let tenants = format!("/api/v1/workspaces/{ws}/projects/web/tenants");
    app.post(&tenants, &app.admin_token, json!({"platform": platform})).await.expect(201);
    app.replicate().await;
    let t = app.get(&format!("{tenants}/{platform}"), &app.admin_token).await.expect(200).body;
    assert_eq!(t["status"], "succeeded", "{t}");
    page.close().await;
}

/// Administration → Platforms on a real Keystone: registering a platform
/// (secrets write-only, problems at their field), a landing zone, and a
/// manual deletion that a platform engineer first declines (the project
/// stays with its tenant, DL5), then confirms (the project goes, DL3).
async fn if2_tn1_ad5_dl3_dl5_platform_registration_and_manual_deletion(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let Some(os) = crate::tenants::Os::get() else { return };
    let platform = crate::tenants::unique("os");
    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/admin/platforms", app.base)).await;
    page.fill("identifier", &platform).await;
    page.select("type", "openstack").await;
    page.select("deletion", "manual").await;
    page.fill("settings", &format!("auth_url={}\ndomain=Default", os.url)).await;
    page.fill("secrets", "username=admin").await;
    page.fill("role_mapping", "project_user=member\nproject_admin=admin").await;
    page.click_button("Register platform").await;
    // the missing password is named; the secrets typed are not sent back
    page.wait_for("#platform-secrets-error").await;
    assert!(
        page.text("#platform-secrets-error").await.contains("password"),
        "{}",
        page.text("#platform-secrets-error").await
    );
    assert_eq!(page.value("#platform-secrets").await, "");
    assert!(page.value("#platform-settings").await.contains("domain=Default"));
    page.screenshot(&shot(&app, "register-platform-errors")).await;
    page.fill("secrets", &format!("username=admin\npassword={}", os.password)).await;
    page.click_button("Register platform").await;
    page.wait_for_text(&format!("The platform {platform} was registered.")).await;
    assert!(!page.body_text().await.contains(&os.password), "a secret is never shown");
    page.fill("identifier", "sandbox").await;
    page.fill("display_name", "Sandbox").await;
    page.click_button("Add landing zone").await;
    page.wait_for_text("The landing zone Sandbox was added.").await;

    // the landing zone changed on its own page: a value written as JSON stays JSON
    page.click_link("Sandbox").await;
    page.wait_for("#zone-settings").await;
    page.set_value("#zone-settings", "domain=Default\nlabels={\"team\": ").await;
    page.click_button("Save the landing zone").await;
    page.wait_for("#zone-settings-error").await;
    assert!(page.text("#zone-settings-error").await.contains("labels"), "{}", page.text("#zone-settings-error").await);
    page.fill("display_name", "Sandbox zone").await;
    page.set_value("#zone-settings", "domain=Default\nlabels={\"team\": \"a\"}").await;
    page.click_button("Save the landing zone").await;
    page.wait_for_text("The landing zone Sandbox zone was saved.").await;
    let zone =
        app.get(&format!("/api/v1/platforms/{platform}/landing-zones/sandbox"), &app.admin_token).await.expect(200);
    assert_eq!(zone.body["display_name"], "Sandbox zone");
    assert_eq!(zone.body["settings"], json!({"domain": "Default", "labels": {"team": "a"}}));
    page.click_link("Sandbox zone").await;
    assert_eq!(page.value("#zone-settings").await, "domain=Default\nlabels={\"team\":\"a\"}");
    page.screenshot(&shot(&app, "landing-zone")).await;
    page.click_link(&platform).await;
    page.wait_for("#change-mapping").await;

    page.click("button[aria-label='Remove the landing zone Sandbox zone']").await;
    page.wait_for_text("The landing zone sandbox was removed.").await;

    // changed in place: a role mapping added
    let mapping = page.value("#change-mapping").await;
    page.set_value("#change-mapping", &format!("{mapping}\nproject_reader=reader")).await;
    page.click_button("Save changes").await;
    page.wait_for_text(&format!("The platform {platform} was changed.")).await;
    let p = app.get(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect(200);
    assert_eq!(p.body["role_mapping"]["project_reader"], "reader");
    // a line that is not KEY=VALUE is named, and nothing changes
    page.set_value("#change-mapping", "project_reader").await;
    page.click_button("Save changes").await;
    page.wait_for(".invalid #change-mapping").await;
    let p = app.get(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect(200);
    assert_eq!(p.body["role_mapping"]["project_reader"], "reader");

    // a project with a tenant on it, deleted: it waits for a platform engineer
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "legacy").await;
    app.post(
        &format!("/api/v1/workspaces/{ws}/projects/legacy/tenants"),
        &app.admin_token,
        json!({"platform": platform}),
    )
    .await
    .expect(201);
    app.replicate().await;
    delete_by_hand(&page, &app, &ws).await;
    page.goto(&format!("{}/admin/platforms/{platform}", app.base)).await;
    page.wait_for_text("Tenant deletions to confirm").await;
    page.screenshot(&shot(&app, "platform-page")).await;
    page.click("button[aria-label=\"Decline the deletion of legacy's tenant\"]").await;
    page.wait_for_text("The deletion was declined: the tenant stays.").await;
    app.get(&format!("/api/v1/workspaces/{ws}/projects/legacy"), &app.admin_token).await.expect(200);

    // asked again and confirmed by the engineer: the project goes with its last tenant
    delete_by_hand(&page, &app, &ws).await;
    page.goto(&format!("{}/admin/platforms/{platform}", app.base)).await;
    page.click("button[aria-label=\"Confirm the deletion of legacy's tenant\"]").await;
    page.wait_for_text("The tenant of legacy is deleted").await;
    app.get(&format!("/api/v1/workspaces/{ws}/projects/legacy"), &app.admin_token).await.expect(404);
    page.close().await;
}

/// Ask to delete project `legacy` of `ws` and confirm: its manual tenant
/// then waits for a platform engineer.
async fn delete_by_hand(page: &Page, app: &TestApp, ws: &str) {
    page.goto(&format!("{}/workspaces/{ws}/projects/legacy/deletion", app.base)).await;
    page.click_button("Delete this project").await;
    page.wait_for_text("The deletion was requested.").await;
    page.fill("identifier", "legacy").await;
    page.click_button("Delete for good").await;
    page.wait_for_text("waits for a platform engineer").await;
}

/// Administration → Roles and Tags, and a workspace's Payment Methods with
/// the 30-day forecast.
async fn if2_ac4_pr3_pm1_roles_tags_and_payment_methods(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.workspace(&app.admin_token, "team-a").await;
    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/admin/catalogue", app.base)).await;
    page.fill("identifier", "Auditor!").await;
    page.fill("display_name", "Project Auditor").await;
    page.click_button("Add role").await;
    page.wait_for("#role-identifier-error").await;
    page.fill("identifier", "project_auditor").await;
    page.click_button("Add role").await;
    page.wait_for_text("The project role Project Auditor was created.").await;
    let roles = app.get("/api/v1/project-roles", &app.admin_token).await.expect(200);
    assert!(roles.body["items"].as_array().unwrap().iter().any(|r| r["identifier"] == "project_auditor"));

    page.fill("key", "environment").await;
    // (both forms have a name field: the tag form's by its id)
    page.set_value("#tag-name", "Environment").await;
    page.select("type", "single_select").await;
    page.fill("options", "production, staging").await;
    page.check("required").await;
    page.click_button("Define tag").await;
    page.wait_for_text("The tag Environment was defined.").await;
    let defs = app.get("/api/v1/tag-definitions", &app.admin_token).await.expect(200);
    assert_eq!(defs.body["items"][0]["options"], json!(["production", "staging"]));
    assert_eq!(defs.body["items"][0]["required"], true);
    page.screenshot(&shot(&app, "roles-and-tags")).await;

    page.goto(&format!("{}/workspaces/team-a/payment-methods", app.base)).await;
    page.fill("name", "Cost centre 4711").await;
    page.fill("amount", "a lot").await;
    page.set_value("#method-expires", "2026-12-10").await;
    page.click_button("Add").await;
    page.wait_for("#method-amount-error").await;
    assert_eq!(page.value("#method-name").await, "Cost centre 4711");
    page.fill("amount", "1200.50").await;
    page.set_value("#method-expires", "2026-12-10").await;
    page.click_button("Add").await;
    page.wait_for_text("The payment method Cost centre 4711 was added.").await;
    let methods = app.get("/api/v1/workspaces/team-a/payment-methods", &app.admin_token).await.expect(200);
    let id = methods.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/workspaces/team-a/projects",
        &app.admin_token,
        json!({"identifier": "shop", "display_name": "Shop", "payment_method": id, "tags": {"environment": "staging"}}),
    )
    .await
    .expect(201);
    page.goto(&format!("{}/workspaces/team-a/payment-methods", app.base)).await;
    page.wait_for_text("Running out within 30 days").await;
    let forecast = page.text("tr.soon").await;
    assert!(forecast.contains("shop") && forecast.contains("2026-12-10"), "{forecast}");
    page.screenshot(&shot(&app, "payment-methods")).await;

    // changed in place; a method a project names is not removed
    page.set_value(&format!("#until-{id}"), "2027-06-30").await;
    page.click("button[aria-label='Save the payment method Cost centre 4711']").await;
    page.wait_for_text("The payment method Cost centre 4711 was saved.").await;
    assert!(!page.exists("tr.soon").await, "no longer running out");
    page.click("button[aria-label='Remove the payment method Cost centre 4711']").await;
    page.wait_for(".alert").await;
    assert_eq!(
        app.get("/api/v1/workspaces/team-a/payment-methods", &app.admin_token).await.body["items"][0]["expires_on"],
        "2027-06-30"
    );

    // a role and a tag changed on their own pages
    page.goto(&format!("{}/admin/catalogue", app.base)).await;
    page.click_link("Project Auditor").await;
    page.fill("display_name", "").await;
    page.click_button("Save the role").await;
    page.wait_for("#role-name-error").await;
    page.fill("display_name", "Project Auditor").await;
    page.fill("description", "Reads the project's audit logs").await;
    page.click_button("Save the role").await;
    page.wait_for_text("The project role Project Auditor was saved.").await;
    let roles = app.get("/api/v1/project-roles", &app.admin_token).await.expect(200);
    let auditor =
        roles.body["items"].as_array().unwrap().iter().find(|r| r["identifier"] == "project_auditor").cloned();
    assert_eq!(auditor.unwrap()["description"], "Reads the project's audit logs");
    page.click_link("Environment").await;
    page.fill("options", "production, staging, development").await;
    page.click_button("Save the tag").await;
    page.wait_for_text("The tag Environment was saved.").await;
    page.click_link("Environment").await;
    page.select("tags.environment", "development").await;
    page.fill("options", "production, staging").await;
    page.click_button("Save the tag").await;
    // a default that is not among the options is named, and nothing changes
    page.wait_for(".invalid #tag-environment").await;
    page.screenshot(&shot(&app, "tag-definition-errors")).await;
    let defs = app.get("/api/v1/tag-definitions", &app.admin_token).await.expect(200);
    assert_eq!(defs.body["items"][0]["options"], json!(["production", "staging", "development"]));
    assert_eq!(defs.body["items"][0]["default"], Value::Null);
    page.fill("options", "production, staging, development").await;
    page.click_button("Save the tag").await;
    page.wait_for_text("The tag Environment was saved.").await;
    let defs = app.get("/api/v1/tag-definitions", &app.admin_token).await.expect(200);
    assert_eq!(defs.body["items"][0]["default"], "development");

    // a role no platform maps is removed; the tag too
    page.goto(&format!("{}/admin/catalogue", app.base)).await;
    page.click("button[aria-label='Remove the project role Project Auditor']").await;
    page.wait_for_text("project_auditor was removed.").await;
    page.click("button[aria-label='Remove the tag Environment']").await;
    page.wait_for_text("environment was removed.").await;
    page.close().await;
}

/// A platform engineer (AD5) finds the platforms in the menu, and nothing of
/// the admin area beyond them.
async fn if2_ad5_a_platform_engineer_reaches_the_platforms_not_the_admin_area(app: TestApp) {
    let Some(browser) = browser().await else { return };
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "pat", "email": "pat@example.org", "first_name": "Pat", "last_name": "Engineer",
               "password": "password-of-pat", "installation_roles": ["platform_engineer"]}),
    )
    .await
    .expect(201);
    let page = browser.open(Viewport::Phone).await;
    sign_in(&page, &app, "pat", "password-of-pat").await;
    page.click("details.menu summary").await;
    assert!(!page.exists("a[href='/admin/workspaces']").await, "no Administration for a platform engineer");
    page.click_link("Platforms").await;
    page.wait_for_text("Register a platform").await;
    assert!(!page.exists("a[href='/admin/users']").await, "no admin tab but Platforms");
    page.screenshot(&shot(&app, "platform-engineer-phone")).await;
    page.goto(&format!("{}/admin/users", app.base)).await;
    page.wait_for_text("Not allowed").await;
    page.close().await;
}

/// The third deletion case (DL4) in the browser: the automatic tenant goes
/// at once, the manual one waits for a platform engineer, and the project
/// goes with the last.
async fn if2_dl4_a_project_with_automatic_and_manual_tenants_is_deleted_in_the_browser(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let Some(os) = crate::tenants::Os::get() else { return };
    let (auto, manual) = (crate::tenants::unique("osa"), crate::tenants::unique("osm"));
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&auto, "Default")).await.expect(201);
    let mut by_hand = os.platform(&manual, "Default");
    by_hand["deletion"] = json!("manual");
    app.post("/api/v1/platforms", &app.admin_token, by_hand).await.expect(201);
    let ws = crate::tenants::unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "legacy").await;
    for p in [&auto, &manual] {
        app.post(&format!("/api/v1/workspaces/{ws}/projects/legacy/tenants"), &app.admin_token, json!({"platform": p}))
            .await
            .expect(201);
    }
    app.replicate().await;

    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "admin", ADMIN_PASSWORD).await;
    page.goto(&format!("{}/workspaces/{ws}/projects/legacy/deletion", app.base)).await;
    page.click_button("Delete this project").await;
    page.wait_for_text("The deletion was requested.").await;
    page.fill("identifier", "legacy").await;
    page.click_button("Delete for good").await;
    page.wait_for_text("The deletion was confirmed").await;
    assert!(page.text(&format!("[data-deletion='{auto}']")).await.contains("being deleted by Canopy"));
    assert!(page.text(&format!("[data-deletion='{manual}']")).await.contains("waits for a platform engineer"));
    // the automatic tenant goes; the open page follows (IF4)
    app.replicate().await;
    page.wait_for_text("Tenant").await;
    let start = std::time::Instant::now();
    while page.exists(&format!("[data-deletion='{auto}']")).await {
        assert!(start.elapsed() < canopy_testkit::browser::WAIT, "the deleted tenant stays on the page");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    page.screenshot(&shot(&app, "deletion-mixed")).await;
    app.get(&format!("/api/v1/workspaces/{ws}/projects/legacy"), &app.admin_token).await.expect(200);
    // the engineer confirms the manual one: the project goes
    page.goto(&format!("{}/admin/platforms/{manual}", app.base)).await;
    page.click("button[aria-label=\"Confirm the deletion of legacy's tenant\"]").await;
    page.wait_for_text("The tenant of legacy is deleted").await;
    app.get(&format!("/api/v1/workspaces/{ws}/projects/legacy"), &app.admin_token).await.expect(404);
    page.close().await;
}

/// Profile: a password change needs the current password and ends every
/// session (SE6); and a manager's notices (AC12) are counted beside the name.
async fn if2_se6_ac12_profile_password_change_ends_every_session_and_notices_are_counted(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let mia = app.user("mia").await;
    app.workspace(&mia, "team-a").await;
    app.project(&mia, "team-a", "web").await;
    app.post(
        "/api/v1/workspaces/team-a/projects/web/bindings",
        &mia,
        json!({"user": "mia", "role": "project_user", "expires_at": "2026-11-25T00:00:00Z"}),
    )
    .await
    .expect(201);
    let page = browser.open(Viewport::Desktop).await;
    sign_in(&page, &app, "mia", "password-of-mia").await;
    // one binding expires soon in a workspace mia manages: the count says 1
    let count = page.text("details.menu summary .count").await;
    assert!(count.starts_with('1') && count.ends_with("notices"), "{count}");
    assert!(page.body_text().await.contains("Access that expires soon"));
    page.click("details.menu summary").await;
    page.click_link("Profile").await;
    page.wait_for_text("Change your password").await;
    page.fill("current_password", "not-my-password").await;
    page.fill("password", "a-brand-new-password").await;
    page.click_button("Change password").await;
    page.wait_for("#current-password-error").await;
    page.screenshot(&shot(&app, "profile-wrong-password")).await;
    app.get("/api/v1/me", &mia).await.expect(200);
    page.fill("current_password", "password-of-mia").await;
    page.fill("password", "a-brand-new-password").await;
    page.click_button("Change password").await;
    page.wait_for_text("Your password was changed").await;
    // every session ended: the API token and this browser's
    app.get("/api/v1/me", &mia).await.expect(401);
    page.goto(&format!("{}/", app.base)).await;
    page.wait_for("form[action='/login']").await;
    app.sign_in("mia", "a-brand-new-password").await;
    page.close().await;
}
