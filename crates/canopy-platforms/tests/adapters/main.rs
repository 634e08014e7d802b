//! TN6: each adapter against the real component it speaks to, started by
//! the project's scripts (`scripts/test` starts them all and names them in
//! `CANOPY_TEST_*` variables). Outside CI a test skips when its component
//! is not there; in CI that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aws;
mod azure;
mod cloudfoundry;
mod gcp;
mod keystone;
mod kubernetes;
mod osb;

use std::collections::{BTreeMap, BTreeSet};

use canopy_domain::replication::{Assignment, plan};
use canopy_platforms::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use uuid::Uuid;

/// The values of `vars`, or `None` (skip) outside CI when one is missing.
pub fn component<const N: usize>(vars: [&str; N], what: &str) -> Option<[String; N]> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let values: Option<Vec<String>> = vars.iter().map(|v| std::env::var(v).ok()).collect();
    match values {
        Some(values) => values.try_into().ok(),
        None if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{} is not set: {what} is required in CI (scripts/test starts it)", vars.join(", "))
        }
        None => {
            eprintln!("skipping: no {what} ({} not set; scripts/test starts one)", vars.join(", "));
            None
        }
    }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

pub fn held(user: &str, role: &str) -> Held {
    Held { username: user.to_owned(), platform_role: role.to_owned() }
}

pub fn spec(name: String, landing_zone: serde_json::Value) -> TenantSpec {
    let serde_json::Value::Object(landing_zone) = landing_zone else { panic!("a landing zone is an object") };
    TenantSpec { name, description: "Canopy tenant".into(), landing_zone }
}

/// A test's person: `NAME@example.org`.
pub fn person(name: &str) -> PlatformUser {
    PlatformUser { username: name.to_owned(), email: format!("{name}@example.org") }
}

/// The people a test names, as Canopy would know them.
pub fn people<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    names.into_iter().map(|n| (n.to_owned(), person(n).email)).collect()
}

/// Make the tenant hold `desired` with the calls the domain's plan asks for;
/// `known` is what Canopy believes the tenant holds (see `Platform::observe`).
/// Returns how many calls it took.
pub async fn converge<P: Platform>(
    p: &P,
    tenant: &TenantRef,
    desired: &BTreeSet<Held>,
    known: &BTreeSet<Held>,
    managed: &BTreeSet<String>,
) -> usize {
    let mut ids: BTreeMap<String, Uuid> = BTreeMap::new();
    let mut to_assignment = |h: &Held| Assignment {
        user: *ids.entry(h.username.clone()).or_insert_with(Uuid::new_v4),
        platform_role: h.platform_role.clone(),
    };
    let desired_a: BTreeSet<Assignment> = desired.iter().map(&mut to_assignment).collect();
    let assignments: BTreeSet<Held> = desired.union(known).cloned().collect();
    let scope =
        Scope { people: people(assignments.iter().map(|h| h.username.as_str())), assignments, roles: managed.clone() };
    let actual = p.observe(tenant, &scope).await.unwrap();
    let actual_a: BTreeSet<Assignment> = actual.iter().map(&mut to_assignment).collect();
    let names: BTreeMap<Uuid, String> = ids.iter().map(|(n, id)| (*id, n.clone())).collect();
    let p_ = plan(&desired_a, &actual_a, managed);
    for a in &p_.grant {
        let name = &names[&a.user];
        p.grant(tenant, &person(name), &a.platform_role).await.unwrap();
    }
    for a in &p_.revoke {
        p.revoke(tenant, &person(&names[&a.user]), &a.platform_role).await.unwrap();
    }
    p_.grant.len() + p_.revoke.len()
}

/// The life of a tenant, the same on every platform: made once, holds
/// exactly the desired roles through grants, repeated calls, drift and
/// revocations, and is deleted (twice is fine). `roles` are two platform
/// roles; `sees_foreign`: whether the platform lists assignments Canopy did
/// not ask about (all but an Open Service Broker). Returns the tenant.
pub async fn tenant_holds_exactly_the_desired_roles<P: Platform>(
    p: &P,
    spec: &TenantSpec,
    roles: [&str; 2],
    sees_foreign: bool,
) -> TenantRef {
    tenant_holds_exactly_the_desired_roles_of(p, spec, roles, sees_foreign, [unique("ann"), unique("bob")]).await
}

/// [`tenant_holds_exactly_the_desired_roles`] for two people the platform
/// knows already (`NAME@example.org`), where it cannot make accounts.
pub async fn tenant_holds_exactly_the_desired_roles_of<P: Platform>(
    p: &P,
    spec: &TenantSpec,
    roles: [&str; 2],
    sees_foreign: bool,
    [ann, bob]: [String; 2],
) -> TenantRef {
    let [first, second] = roles;
    let tenant = p.ensure_tenant(spec).await.unwrap();
    assert_eq!(p.ensure_tenant(spec).await.unwrap(), tenant, "ensuring twice finds the same tenant");
    let none = BTreeSet::new();
    let everything = Scope {
        assignments: [held(&ann, first), held(&ann, second), held(&bob, first), held(&bob, second)].into(),
        roles: roles.map(String::from).into(),
        people: people([ann.as_str(), bob.as_str()]),
    };
    assert!(p.observe(&tenant, &everything).await.unwrap().is_empty(), "a new tenant holds nothing");

    let managed: BTreeSet<String> = roles.map(String::from).into();
    let desired = BTreeSet::from([held(&ann, first), held(&bob, second)]);
    assert_eq!(converge(p, &tenant, &desired, &none, &managed).await, 2);
    assert_eq!(p.observe(&tenant, &everything).await.unwrap(), desired);
    // converged: nothing more to do, and repeating a grant changes nothing
    assert_eq!(converge(p, &tenant, &desired, &none, &managed).await, 0);
    p.grant(&tenant, &person(&ann), first).await.unwrap();
    assert_eq!(p.observe(&tenant, &everything).await.unwrap(), desired);

    // drift made outside Canopy: an assignment removed, another added;
    // the next pass restores the desired state
    p.revoke(&tenant, &person(&ann), first).await.unwrap();
    let foreign = held(&bob, first);
    p.grant(&tenant, &person(&bob), first).await.unwrap();
    let known = if sees_foreign { none.clone() } else { BTreeSet::from([foreign]) };
    assert_eq!(converge(p, &tenant, &desired, &known, &managed).await, 2);
    assert_eq!(p.observe(&tenant, &everything).await.unwrap(), desired);

    // a binding ends: the role leaves the tenant; revoking twice is fine
    let fewer = BTreeSet::from([held(&ann, first)]);
    assert_eq!(converge(p, &tenant, &fewer, &desired, &managed).await, 1);
    p.revoke(&tenant, &person(&bob), second).await.unwrap();
    p.revoke(&tenant, &person("nobody-at-all"), second).await.unwrap();
    assert_eq!(p.observe(&tenant, &everything).await.unwrap(), fewer);
    tenant
}

/// Deleting a tenant twice is fine, and a deleted tenant is reported as
/// such rather than as an empty one.
pub async fn deleted_tenant_is_reported<P: Platform>(p: &P, tenant: &TenantRef) {
    p.delete_tenant(tenant).await.unwrap();
    p.delete_tenant(tenant).await.unwrap();
    match p.observe(tenant, &Scope::default()).await {
        Err(PlatformError::Permanent { .. }) => {}
        other => panic!("observing a deleted tenant: expected a permanent error, got {other:?}"),
    }
}

/// A loopback relay to a plain-HTTP component that loses answers on
/// demand: after [`Lossy::lose`], the next request whose head holds the
/// pattern reaches the component, which carries it out and answers, and the
/// relay closes the connection instead of passing the answer on, as a
/// network or a crash loses one. (The components behind TLS are not
/// relayed: their bytes cannot be read on the way.)
pub struct Lossy {
    /// The component's URL through the relay.
    pub url: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Lossy {
    pub async fn to(component_url: &str) -> Lossy {
        let rest = component_url.strip_prefix("http://").expect("a plain-HTTP component");
        let (upstream, path) = rest.split_once('/').map_or((rest, ""), |(h, _)| (h, &rest[h.len()..]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let lossy = Lossy { url, armed: Default::default(), lost: Default::default() };
        let (upstream, armed, lost) = (upstream.to_owned(), lossy.armed.clone(), lossy.lost.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), armed.clone(), lost.clone()));
            }
        });
        lossy
    }

    /// Lose the answer to the next request whose head contains `pattern`.
    pub fn lose(&self, pattern: &str) {
        *self.armed.lock().unwrap() = Some(pattern.to_owned());
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn relay(
    client: tokio::net::TcpStream,
    upstream: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
    let ((mut cr, mut cw), (mut sr, mut sw)) = (client.into_split(), server.into_split());
    let lose = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0; 1 << 16];
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            {
                let head = String::from_utf8_lossy(&buf[..n]);
                let mut a = armed.lock().unwrap();
                if a.as_deref().is_some_and(|p| head.contains(p)) {
                    *a = None;
                    lose.store(true, Ordering::SeqCst);
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0; 1 << 16];
        while let Ok(n @ 1..) = sr.read(&mut buf).await {
            if lose.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                return; // the answer came: drop it, and the connection with it
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// TN6: an answer lost on the way, and the call repeated, as the engine
/// repeats it: the tenant is made once and the role given once. `create`
/// and `grant` are patterns of the request heads that make the tenant and
/// give the role. Returns the tenant.
pub async fn a_lost_answer_makes_no_duplicate<P: Platform>(
    p: &P,
    lossy: &Lossy,
    spec: &TenantSpec,
    role: &str,
    [create, grant]: [&str; 2],
) -> TenantRef {
    lossy.lose(create);
    match p.ensure_tenant(spec).await {
        Err(PlatformError::Retryable { .. }) => {}
        other => panic!("a lost answer to making the tenant: expected a retryable error, got {other:?}"),
    }
    assert_eq!(lossy.lost(), 1, "no answer matching {create:?} was lost");
    let tenant = p.ensure_tenant(spec).await.unwrap();
    assert_eq!(p.ensure_tenant(spec).await.unwrap(), tenant);
    let ann = unique("ann");
    lossy.lose(grant);
    match p.grant(&tenant, &person(&ann), role).await {
        Err(PlatformError::Retryable { .. }) => {}
        other => panic!("a lost answer to a grant: expected a retryable error, got {other:?}"),
    }
    assert_eq!(lossy.lost(), 2, "no answer matching {grant:?} was lost");
    p.grant(&tenant, &person(&ann), role).await.unwrap();
    let scope = Scope {
        assignments: [held(&ann, role)].into(),
        roles: [role.to_owned()].into(),
        people: people([ann.as_str()]),
    };
    assert_eq!(p.observe(&tenant, &scope).await.unwrap(), [held(&ann, role)].into());
    tenant
}

/// Run a fake's fidelity check (`command`, the vendor's own clients
/// against the fake, given `args`) and require it to pass: at least 20
/// checks, none failed. `who` names the clients in the failure message.
/// [`fake_is_faithful`] against an instance of the fake of its own
/// (`scripts/SCRIPT start DIR`, which prints `values` values and then the
/// check's command), stopped when the check ends: the check resets the
/// fake and changes its settings, which any test using the shared instance
/// at the same time would see (under `cargo nextest`, the end-to-end tests).
pub async fn own_fake_is_faithful(script: &str, values: usize, who: &str) {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let dir = std::env::temp_dir().join(unique(&format!("canopy-{script}-fidelity")));
    let out = tokio::process::Command::new(scripts.join(script)).arg("start").arg(&dir).output().await.unwrap();
    let _stop = Stop(scripts.join(script), dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "scripts/{script} start:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let Some((command, args)) = lines[lines.len().saturating_sub(values + 1)..].split_last() else {
        panic!("scripts/{script} start printed nothing")
    };
    assert_eq!(args.len(), values, "scripts/{script} start printed:\n{stdout}");
    fake_is_faithful(command, args, who).await;
}

/// Stops the fake started in a directory when dropped.
struct Stop(std::path::PathBuf, std::path::PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.0).arg("stop").arg(&self.1).output();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

pub async fn fake_is_faithful(command: &str, args: &[&str], who: &str) {
    let mut command = command.split_whitespace();
    let program = command.next().unwrap();
    let out = tokio::process::Command::new(program).args(command).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{who} found the fake unfaithful:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().filter(|l| l.starts_with("PASS ")).count() >= 20, "too few checks ran:\n{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
