//! B1 per platform type (`canopy-bench b1-cloud --platform azure|gcp|cloudfoundry`):
//! PROJECTS projects × PER_PROJECT bindings replicated from scratch by the
//! real adapter into the platform's fake (`scripts/azure|gcp|cf start DIR`,
//! named by the same `CANOPY_TEST_*` variables as the tests), with the fake
//! enforcing the platform's published request limits.
//!
//! Printed: the time, the platform calls and the share the fake throttled
//! (429), and the time's ratio to the quota bound: the least time the
//! published limits allow for the requests the run made (the fake computes
//! it from what each of its buckets took; 0 when the run fits the bursts).

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use canopy_domain::platforms::PlatformType;
use canopy_engine::replication::{Adapters, ReplicationConfig, Replicator};
use canopy_store::{SecretKey, Store};
use clap::ValueEnum;
use serde_json::{Map, Value, json};

use crate::{Connection, WallClock, add_platform, add_projects, base, drain};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Cloud {
    Azure,
    Gcp,
    Cloudfoundry,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The platform type, reached through its fake (started by `scripts/azure|gcp|cf start DIR`,
    /// whose printed lines go into the CANOPY_TEST_AZURE_*, _GCP_* or _CF_* variables).
    #[arg(long, value_enum)]
    platform: Cloud,
    #[arg(long, default_value_t = 100)]
    projects: usize,
    #[arg(long, default_value_t = 10)]
    per_project: usize,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: start the fake (scripts/azure|gcp|cf start DIR)"))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A person's record in a fake's directory, by e-mail address.
type Record = fn(&str) -> Value;

/// The fake's address, its CA, the platform's registration, and the
/// control API's path where the bench's people are seeded (with their record).
struct Fake {
    url: String,
    ca: String,
    connection: Connection,
    directory: Option<(&'static str, Record)>,
}

fn fake(cloud: Cloud) -> anyhow::Result<Fake> {
    Ok(match cloud {
        Cloud::Azure => {
            let (url, ca) = (env("CANOPY_TEST_AZURE_URL")?, std::fs::read_to_string(env("CANOPY_TEST_AZURE_CA")?)?);
            let billing = "/providers/Microsoft.Billing/billingAccounts/canopy-test-account/billingProfiles/\
                           canopy-test-profile/invoiceSections/canopy-test-section";
            Fake {
                connection: Connection {
                    platform_type: PlatformType::Azure,
                    settings: object(json!({"tenant_id": env("CANOPY_TEST_AZURE_TENANT")?, "billing_scope": billing,
                        "authority_url": url, "arm_url": url, "graph_url": url, "ca_cert": ca})),
                    secrets: object(json!({"client_id": env("CANOPY_TEST_AZURE_CLIENT_ID")?,
                        "client_secret": env("CANOPY_TEST_AZURE_CLIENT_SECRET")?})),
                    platform_role: "Contributor".into(),
                },
                directory: Some(("users", |email| json!({"userPrincipalName": email, "mail": email}))),
                url,
                ca,
            }
        }
        Cloud::Gcp => {
            let (url, ca) = (env("CANOPY_TEST_GCP_URL")?, std::fs::read_to_string(env("CANOPY_TEST_GCP_CA")?)?);
            let key = std::fs::read_to_string(env("CANOPY_TEST_GCP_KEY")?)?;
            Fake {
                connection: Connection {
                    platform_type: PlatformType::Gcp,
                    settings: object(json!({"parent": env("CANOPY_TEST_GCP_FOLDER")?, "crm_url": url,
                        "asset_url": url, "ca_cert": ca})),
                    secrets: object(json!({"service_account_key": key})),
                    platform_role: "roles/editor".into(),
                },
                directory: None,
                url,
                ca,
            }
        }
        Cloud::Cloudfoundry => {
            let (url, ca) = (env("CANOPY_TEST_CF_URL")?, std::fs::read_to_string(env("CANOPY_TEST_CF_CA")?)?);
            Fake {
                connection: Connection {
                    platform_type: PlatformType::CloudFoundry,
                    settings: object(
                        json!({"api_url": url, "organization": env("CANOPY_TEST_CF_ORG")?, "ca_cert": ca}),
                    ),
                    secrets: object(json!({"username": env("CANOPY_TEST_CF_USERNAME")?,
                        "password": env("CANOPY_TEST_CF_PASSWORD")?})),
                    platform_role: "space_developer".into(),
                },
                directory: Some(("uaa-users", |email| json!({"username": email, "origin": "uaa"}))),
                url,
                ca,
            }
        }
    })
}

pub async fn run(opts: Options, database: Option<String>, workers: usize, per_platform: usize) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = fake(opts.platform)?;
    let control =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(fake.ca.as_bytes())?).build()?;
    let post = |path: &'static str, body: Value| {
        let req = control.post(format!("{}/_fake/{path}", fake.url)).json(&body);
        async move {
            let res = req.send().await?;
            anyhow::ensure!(res.status().is_success(), "the fake refused /_fake/{path}: {}", res.status());
            anyhow::Ok(())
        }
    };
    post("reset", json!({})).await?;

    let dir = tempfile::tempdir()?;
    let url = database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Store::connect(&url).await.context("opening the database")?;
    let key = SecretKey::generate()?;
    let started = Instant::now();
    let people = opts.per_project * 10;
    let mut s = base(&store, &key, 0, people).await?;
    if let Some((path, record)) = fake.directory {
        let everyone: Vec<Value> = (0..people).map(|i| record(&format!("user{i}@example.org"))).collect();
        post(path, Value::Array(everyone)).await?;
    }
    let mut tx = store.write().await?;
    let ident = format!("{:?}", opts.platform).to_lowercase();
    s.platforms.push(add_platform(&mut tx, &key, (s.role, &s.role_name), &ident, fake.connection).await?);
    tx.commit().await?;
    add_projects(&store, &s, "p", opts.projects, opts.per_project, None).await?;
    println!(
        "B1 {ident} set-up: {} projects × {} bindings, one tenant each, in {:.1} s",
        opts.projects,
        opts.per_project,
        started.elapsed().as_secs_f64()
    );

    // the platform's published limits (the fakes' defaults), from here on
    post("limits", json!({"enabled": true})).await?;
    let config = ReplicationConfig {
        node: "bench".into(),
        workers,
        per_platform,
        poll: StdDuration::from_millis(50),
        ..ReplicationConfig::default()
    };
    let rep = Arc::new(Replicator::new(store.clone(), Arc::new(WallClock), key, Adapters::default(), config));
    let took = drain(&rep, &store).await?;
    let state: Value = control.get(format!("{}/_fake/state", fake.url)).send().await?.json().await?;
    post("limits", json!({"enabled": false})).await?;

    let requests = &state["requests"];
    let (total, throttled) = (requests["total"].as_u64().unwrap_or(0), requests["throttled"].as_u64().unwrap_or(0));
    let share = throttled as f64 / total.max(1) as f64;
    println!(
        "B1 {ident}: {:.1} s for {total} platform calls ({throttled} throttled, {:.1} %), {} tenants at once",
        took.as_secs_f64(),
        share * 100.0,
        per_platform.min(workers)
    );
    match state["quota"]["bound_seconds"].as_f64() {
        Some(bound) if bound > 0.0 => println!(
            "B1 {ident}: quota bound {bound:.1} s (the published limits, for these requests); ratio {:.2}",
            took.as_secs_f64() / bound
        ),
        Some(_) => println!("B1 {ident}: within the published limits' bursts (quota bound 0 s)"),
        None => println!(
            "B1 {ident}: no quota bound: the Cloud Controller does not limit admin callers (limits: {})",
            state["limits"]
        ),
    }
    if let Some(groups) = state["quota"]["groups"].as_object() {
        println!("B1 {ident}: units taken per limit: {}", Value::Object(groups.clone()));
    }
    if let Some(buckets) = state["quota"]["buckets"].as_object() {
        let busiest = buckets.iter().max_by_key(|(_, b)| b["taken"].as_u64().unwrap_or(0));
        if let Some((name, b)) = busiest {
            println!("B1 {ident}: {} request buckets; the busiest, {name}: {b}", buckets.len());
        }
    }
    Ok(())
}
