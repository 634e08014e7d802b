//! TN1, TN2, AD5: platforms with settings, encrypted secrets and role
//! mappings, and their landing zones.

use canopy_testkit::TestApp;
use serde_json::{Value, json};

fn aws(identifier: &str) -> Value {
    json!({
        "identifier": identifier, "type": "aws",
        "settings": {"region": "eu-central-1", "endpoint_url": "http://127.0.0.1:5000"},
        "secrets": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "very-secret-value-123"},
        "role_mapping": {"project_reader": "ReadOnly", "project_admin": "AdministratorAccess"},
        "landing_zone_required": true
    })
}

/// A platform engineer (installation role) signed in.
async fn platform_engineer(app: &TestApp) -> String {
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "pe", "email": "pe@example.org",
        "password": "password-of-pe", "installation_roles": ["platform_engineer"]}),
    )
    .await
    .expect(201);
    app.sign_in("pe", "password-of-pe").await
}

async fn ad5_platform_engineers_register_platforms_with_role_mapping(app: TestApp) {
    let pe = platform_engineer(&app).await;
    let ann = app.user("ann").await;
    let r = app.post("/api/v1/platforms", &pe, aws("aws-prod")).await.expect(201);
    assert_eq!(r.body["type"], "aws");
    assert_eq!(r.body["deletion"], "manual", "AWS tenants are deleted by hand by default (DL3)");
    assert_eq!(r.body["secrets"], json!(["access_key_id", "secret_access_key"]));
    assert_eq!(r.body["role_mapping"], json!({"project_admin": "AdministratorAccess", "project_reader": "ReadOnly"}));
    let os = json!({"identifier": "openstack", "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:5001/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "pw"}, "role_mapping": {"project_user": "member"}});
    let r = app.post("/api/v1/platforms", &app.admin_token, os).await.expect(201);
    assert_eq!(r.body["deletion"], "automatic", "OpenStack tenants are deleted automatically (DL2)");
    // everyone signed in sees the platforms, to choose one for a tenant
    let list = app.get("/api/v1/platforms", &ann).await.expect(200);
    let ids: Vec<_> = list.body["items"].as_array().unwrap().iter().map(|p| p["identifier"].clone()).collect();
    assert_eq!(ids, [json!("aws-prod"), json!("openstack")]);
    // ... but only admins and platform engineers change them
    app.post("/api/v1/platforms", &ann, aws("mine")).await.expect_problem(403, None);
    app.patch("/api/v1/platforms/aws-prod", &ann, json!({"landing_zone_required": false}))
        .await
        .expect_problem(403, None);
    app.delete("/api/v1/platforms/aws-prod", &ann).await.expect_problem(403, None);
    let r = app
        .patch(
            "/api/v1/platforms/aws-prod",
            &pe,
            json!({"role_mapping": {"project_user": "PowerUserAccess"}, "deletion": "automatic"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["role_mapping"], json!({"project_user": "PowerUserAccess"}));
    assert_eq!(r.body["deletion"], "automatic");
    // a mapped project role cannot be deleted
    app.delete("/api/v1/project-roles/project_user", &app.admin_token).await.expect_problem(409, None);
    app.delete("/api/v1/platforms/openstack", &pe).await.expect(204);
    app.get("/api/v1/platforms/openstack", &ann).await.expect_problem(404, None);
    let h = app.get("/api/v1/admin/history?initiator=pe&kind=platform_updated", &app.admin_token).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["new"]["deletion"], "automatic");
}

async fn tn1_secrets_are_encrypted_at_rest_and_never_returned(app: TestApp) {
    let pe = platform_engineer(&app).await;
    let secret = "very-secret-value-123";
    let r = app.post("/api/v1/platforms", &pe, aws("aws-prod")).await.expect(201);
    assert!(!r.body.to_string().contains(secret));
    assert!(!app.get("/api/v1/platforms/aws-prod", &pe).await.body.to_string().contains(secret));
    assert!(!app.get("/api/v1/platforms", &pe).await.body.to_string().contains(secret));
    let h = app.get("/api/v1/admin/history", &app.admin_token).await.expect(200);
    assert!(!h.body.to_string().contains(secret), "never in the history");
    let stored = app.sql_strings("SELECT secrets FROM platforms").await;
    assert!(!stored[0].contains(secret) && !stored[0].contains("AKIAEXAMPLE"), "encrypted at rest");
    // rotate one secret; the other stays
    let r = app
        .patch("/api/v1/platforms/aws-prod", &pe, json!({"secrets": {"secret_access_key": "rotated-value-456"}}))
        .await
        .expect(200);
    assert_eq!(r.body["secrets"], json!(["access_key_id", "secret_access_key"]));
    let id = app.sql_strings("SELECT id FROM platforms WHERE identifier = 'aws-prod'").await;
    let mut tx = app.store.read().await.unwrap();
    let plain = tx.platform_secrets(id[0].parse().unwrap(), &app.secret_key).await.unwrap();
    assert_eq!(plain["access_key_id"], "AKIAEXAMPLE");
    assert_eq!(plain["secret_access_key"], "rotated-value-456");
    // a row moved to another platform does not decrypt
    app.post("/api/v1/platforms", &pe, aws("aws-dev")).await.expect(201);
    app.sql("UPDATE platforms SET secrets = (SELECT secrets FROM platforms WHERE identifier = 'aws-prod') WHERE identifier = 'aws-dev'").await;
    let dev = app.sql_strings("SELECT id FROM platforms WHERE identifier = 'aws-dev'").await;
    let mut tx = app.store.read().await.unwrap();
    assert!(tx.platform_secrets(dev[0].parse().unwrap(), &app.secret_key).await.is_err());
}

async fn tn1_invalid_platforms_are_refused_naming_the_field(app: TestApp) {
    let pe = platform_engineer(&app).await;
    let before = app.snapshot().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"identifier": "x", "type": "vmware"}), "type"),
        (
            json!({"identifier": "X!", "type": "aws", "settings": {"region": "r"}, "secrets": {"access_key_id": "a", "secret_access_key": "b"}}),
            "identifier",
        ),
        (
            json!({"identifier": "x", "type": "aws", "secrets": {"access_key_id": "a", "secret_access_key": "b"}}),
            "settings.region",
        ),
        (
            json!({"identifier": "x", "type": "aws", "settings": {"region": "r", "endpoint_url": "localhost"}, "secrets": {"access_key_id": "a", "secret_access_key": "b"}}),
            "settings.endpoint_url",
        ),
        (
            json!({"identifier": "x", "type": "aws", "settings": {"region": "r", "colour": "blue"}, "secrets": {"access_key_id": "a", "secret_access_key": "b"}}),
            "settings.colour",
        ),
        (
            json!({"identifier": "x", "type": "aws", "settings": {"region": "r"}, "secrets": {"access_key_id": "a"}}),
            "secrets.secret_access_key",
        ),
        (
            json!({"identifier": "x", "type": "kubernetes", "settings": {"api_url": "https://k", "ca_cert": "not a pem"}, "secrets": {"token": "t"}}),
            "settings.ca_cert",
        ),
        (
            json!({"identifier": "x", "type": "kubernetes", "settings": {"api_url": "https://k"}, "secrets": {"token": "t"}, "role_mapping": {"no_such_role": "edit"}}),
            "role_mapping.no_such_role",
        ),
        (
            json!({"identifier": "x", "type": "kubernetes", "settings": {"api_url": "https://k"}, "secrets": {"token": "t"}, "deletion": "sometimes"}),
            "deletion",
        ),
        (
            json!({"identifier": "x", "type": "kubernetes", "settings": {"api_url": 42}, "secrets": {"token": "t"}}),
            "settings.api_url",
        ),
    ];
    for (body, field) in cases {
        app.post("/api/v1/platforms", &pe, body).await.expect_problem(422, Some(field));
    }
    assert_eq!(app.snapshot().await, before, "nothing written");
    app.post("/api/v1/platforms", &pe, aws("aws-prod")).await.expect(201);
    app.post("/api/v1/platforms", &pe, aws("aws-prod")).await.expect_problem(409, Some("identifier"));
    app.patch("/api/v1/platforms/aws-prod", &pe, json!({"settings": {"endpoint_url": "http://x"}}))
        .await
        .expect_problem(422, Some("settings.region"));
    app.patch("/api/v1/platforms/aws-prod", &pe, json!({"secrets": {"token": "t"}}))
        .await
        .expect_problem(422, Some("secrets.token"));
    app.patch("/api/v1/platforms/nope", &pe, json!({})).await.expect_problem(404, None);
}

async fn tn2_landing_zones_carry_the_settings_of_new_tenants(app: TestApp) {
    let pe = platform_engineer(&app).await;
    app.post(
        "/api/v1/platforms",
        &pe,
        json!({"identifier": "k8s", "type": "kubernetes",
        "settings": {"api_url": "https://127.0.0.1:6443"}, "secrets": {"token": "t"},
        "role_mapping": {"project_user": "edit"}}),
    )
    .await
    .expect(201);
    let zone = json!({"identifier": "restricted", "display_name": "Restricted",
        "settings": {"labels": {"tier": "prod"}, "quota": {"pods": "20"}, "cluster_roles": ["edit"]}});
    let r = app.post("/api/v1/platforms/k8s/landing-zones", &pe, zone.clone()).await.expect(201);
    assert_eq!(r.body["settings"]["quota"]["pods"], "20");
    app.post("/api/v1/platforms/k8s/landing-zones", &pe, zone).await.expect_problem(409, Some("identifier"));
    app.post("/api/v1/platforms/k8s/landing-zones", &pe, json!({"identifier": "Bad", "display_name": ""}))
        .await
        .expect_problem(422, None);
    app.post("/api/v1/platforms/nope/landing-zones", &pe, json!({"identifier": "z", "display_name": "Z"}))
        .await
        .expect_problem(404, None);
    let r = app
        .patch("/api/v1/platforms/k8s/landing-zones/restricted", &pe, json!({"settings": {"quota": {"pods": "50"}}}))
        .await
        .expect(200);
    assert_eq!(r.body["settings"], json!({"quota": {"pods": "50"}}));
    let ann = app.user("ann").await;
    let list = app.get("/api/v1/platforms/k8s/landing-zones", &ann).await.expect(200);
    assert_eq!(list.body["items"][0]["identifier"], "restricted");
    app.delete("/api/v1/platforms/k8s/landing-zones/restricted", &ann).await.expect_problem(403, None);
    app.delete("/api/v1/platforms/k8s/landing-zones/restricted", &pe).await.expect(204);
    app.get("/api/v1/platforms/k8s/landing-zones/restricted", &pe).await.expect_problem(404, None);
    let h = app.get("/api/v1/admin/history?kind=landing_zone_updated", &app.admin_token).await.expect(200);
    assert_eq!(h.body["items"][0]["details"]["old"]["settings"]["quota"]["pods"], "20");
}

canopy_testkit::backend_tests! {
    ad5_platform_engineers_register_platforms_with_role_mapping,
    tn1_secrets_are_encrypted_at_rest_and_never_returned,
    tn1_invalid_platforms_are_refused_naming_the_field,
    tn2_landing_zones_carry_the_settings_of_new_tenants,
}
