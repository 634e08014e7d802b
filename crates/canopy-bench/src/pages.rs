//! The web UI's main pages (issue 14) on a real `canopy serve` holding one
//! workspace of 10,000 bindings: the time of each page, one request at a
//! time over loopback (so the server's time, plus a loopback round trip),
//! p50, p99 and the largest, and the size of the page. Pagination must keep
//! every page small, however many bindings the workspace holds.
//!
//! Set-up, written through the store beside the server with every history
//! event: `users` members, `projects` projects of `per_project` bindings,
//! one more project of `per_project` bindings expiring in three days (so
//! that Expired Access and the home page's notices have rows), the
//! workspace's owner and the admin signed in through the sign-in page.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_store::{SecretKey, Store};
use serde_json::json;
use time::OffsetDateTime;

use crate::rest::{PASSWORD, add_members, api, sign_in};
use crate::signin::{ADMIN_PASSWORD, start_server};
use crate::{add_projects, base};

/// What `canopy-bench pages` was asked for.
#[derive(clap::Args)]
pub struct Options {
    /// The `canopy` binary to start.
    #[arg(long, default_value = "target/release/canopy")]
    pub canopy_bin: PathBuf,
    /// Members of the workspace.
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    /// Projects of PER_PROJECT bindings (one more expires soon).
    #[arg(long, default_value_t = 99)]
    pub projects: usize,
    #[arg(long, default_value_t = 100)]
    pub per_project: usize,
    /// Requests timed per page (after 20 to warm up).
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
}

/// The value of the cookie `name` that a response sets.
fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (k, value) = pair.split_once('=')?;
        (k.trim() == name).then(|| value.trim().to_owned())
    })
}

/// Sign in through the sign-in page as a browser does (its CSRF cookie and
/// field); the session's cookie header.
async fn browser_session(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let login = client.get(format!("{base}/login")).send().await?;
    let csrf = cookie_of(&login, "canopy_login").context("the sign-in page set no CSRF cookie")?;
    let body = form_urlencoded_body(&[("csrf", &csrf), ("username", username), ("password", password), ("next", "/")]);
    let res = client
        .post(format!("{base}/login"))
        .header("cookie", format!("canopy_login={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let session = cookie_of(&res, "canopy_session")
        .with_context(|| format!("signing in as {username} through the page: {}", res.status()))?;
    Ok(format!("canopy_session={session}"))
}

fn form_urlencoded_body(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// One page's figures, in milliseconds, and its size in bytes.
struct Timing {
    p50: f64,
    p99: f64,
    max: f64,
    bytes: usize,
}

async fn time_page(client: &reqwest::Client, url: &str, cookie: &str, n: usize) -> anyhow::Result<Timing> {
    let mut micros = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n + 20 {
        let t = Instant::now();
        let res = client.get(url).header("cookie", cookie).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        let took = t.elapsed();
        if !status.is_success() {
            bail!("{url} answered {status}: {}", String::from_utf8_lossy(&body).chars().take(300).collect::<String>());
        }
        if i >= 20 {
            micros.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            bytes = body.len();
        }
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let i = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len().max(1)) - 1;
        micros.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    Ok(Timing { p50: at(0.5), p99: at(0.99), max: at(1.0), bytes })
}

/// Run the bench on `database` (an empty one; `None`: a fresh SQLite file).
pub async fn run(opts: Options, database: Option<String>) -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider (the workspace picks ring)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let database = database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let bin = std::fs::canonicalize(&opts.canopy_bin)
        .with_context(|| format!("{} (build it: cargo build --release -p canopy)", opts.canopy_bin.display()))?;
    let (mut child, addr) = start_server(&bin, dir.path(), &database).await?;
    let base_url = format!("http://{addr}");
    let admin = sign_in(&client, &base_url, "admin", ADMIN_PASSWORD).await?;
    api(
        &client,
        reqwest::Method::POST,
        format!("{base_url}/api/v1/users"),
        &admin,
        json!({"username": "owner", "email": "owner@example.org", "first_name": "Olga", "last_name": "Owner", "password": PASSWORD}),
    )
    .await?;

    let t = Instant::now();
    let store = Store::connect(&database).await.context("opening the database beside the server")?;
    let key = SecretKey::generate()?;
    let s = base(&store, &key, 0, opts.users).await?;
    let owner = store.read().await?.user_by_username("owner").await?.map(|u| u.id).context("no owner account")?;
    add_members(&store, &s, owner).await?;
    add_projects(&store, &s, "p", opts.projects, opts.per_project, None).await?;
    let soon = OffsetDateTime::now_utc() + time::Duration::days(3);
    add_projects(&store, &s, "soon", 1, opts.per_project, Some(soon)).await?;
    drop(store);
    let bindings = (opts.projects + 1) * opts.per_project;
    println!(
        "Pages set-up: {} members, {} projects × {} bindings ({bindings} bindings, {} expiring in 3 days) in {:.1} s",
        opts.users,
        opts.projects + 1,
        opts.per_project,
        opts.per_project,
        t.elapsed().as_secs_f64()
    );

    let owner = browser_session(&client, &base_url, "owner", PASSWORD).await?;
    let admin = browser_session(&client, &base_url, "admin", ADMIN_PASSWORD).await?;
    let ws = "/workspaces/bench";
    let pages: Vec<(&str, String, &str)> = vec![
        ("Home (owner, with notices)", "/".into(), "owner"),
        ("Projects", format!("{ws}/projects"), "owner"),
        ("Project overview", format!("{ws}/projects/p-0"), "owner"),
        ("Project Access", format!("{ws}/projects/p-0/access"), "owner"),
        ("Workspace Access", format!("{ws}/access"), "owner"),
        ("Type-ahead (user12)", format!("{ws}/access/search?q=user12"), "owner"),
        ("Pending Requests", format!("{ws}/requests"), "owner"),
        ("Expired Access", format!("{ws}/expired-access"), "owner"),
        ("Payment Methods", format!("{ws}/payment-methods"), "owner"),
        ("History", format!("{ws}/history"), "owner"),
        ("Admin: Workspaces", "/admin/workspaces".into(), "admin"),
        ("Admin: Users", "/admin/users".into(), "admin"),
        ("Admin: Groups", "/admin/groups".into(), "admin"),
    ];
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}   ({} requests each, one at a time)",
        "page", "p50 ms", "p99 ms", "max ms", "KiB", opts.requests
    );
    for (name, path, who) in pages {
        let cookie = if who == "admin" { &admin } else { &owner };
        let f = time_page(&client, &format!("{base_url}{path}"), cookie, opts.requests).await?;
        println!("{name:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.1}", f.p50, f.p99, f.max, f.bytes as f64 / 1024.0);
    }
    let _ = child.kill().await;
    Ok(())
}
