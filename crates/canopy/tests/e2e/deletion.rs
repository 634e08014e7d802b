//! DL1-DL5, AD5: deleting projects and tenants on a real Keystone, with
//! automatic and manual platforms.

use reqwest::Method;
use serde_json::{Value, json};

use canopy_testkit::TestApp;

use crate::tenants::{Os, unique};

/// A workspace with project `web` and, per (platform, deletion mode), a
/// replicated tenant. Answers the workspace and each tenant's external id.
async fn setup(app: &TestApp, os: &Os, platforms: &[(&str, &str)]) -> (String, Vec<String>) {
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    for (platform, mode) in platforms {
        let domain = unique("d");
        os.domain(&domain).await;
        let mut body = os.platform(platform, &domain);
        body["deletion"] = json!(mode);
        app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
        app.post(
            &format!("/api/v1/workspaces/{ws}/projects/web/tenants"),
            &app.admin_token,
            json!({"platform": platform}),
        )
        .await
        .expect(201);
    }
    app.replicate().await;
    let mut ids = Vec::new();
    for (platform, _) in platforms {
        let t = app.get(&format!("/api/v1/workspaces/{ws}/projects/web/tenants/{platform}"), &app.admin_token).await;
        ids.push(t.expect(200).body["external_id"].as_str().unwrap().to_owned());
    }
    (ws, ids)
}

async fn kinds(app: &TestApp, ws: &str) -> Vec<String> {
    let h = app.get(&format!("/api/v1/workspaces/{ws}/history?limit=500"), &app.admin_token).await.expect(200);
    h.body["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

async fn dl2_automatic_tenant_goes_once_its_resources_are_removed_and_the_identifier_is_typed(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let platform = unique("os");
    let (ws, ids) = setup(&app, &os, &[(&platform, "automatic")]).await;
    let ext = &ids[0];
    // a resource in the tenant: a project nested in it
    let (_, parent) = os.call(Method::GET, &format!("/projects/{ext}"), None).await;
    let child = unique("child");
    let (status, made) = os
        .call(
            Method::POST,
            "/projects",
            Some(json!({"project": {"name": child, "parent_id": ext,
            "domain_id": parent["project"]["domain_id"]}})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let child_id = made["project"]["id"].as_str().unwrap().to_owned();

    let project = format!("/api/v1/workspaces/{ws}/projects/web");
    let r = app.delete(&project, &app.admin_token).await.expect(202);
    assert_eq!(r.body["state"], "awaiting_confirmation");
    assert_eq!(r.body["project_deletion"], true);
    assert_eq!(r.body["tenants"][0]["mode"], "automatic");
    assert_eq!(
        r.body["tenants"][0]["resources"],
        json!([format!("project {child}")]),
        "DL2: found resources are listed"
    );
    let confirm = format!("{project}/deletion/confirm");
    app.post(&confirm, &app.admin_token, json!({"identifier": "wbe"})).await.expect_problem(422, Some("identifier"));
    let refused = app.post(&confirm, &app.admin_token, json!({"identifier": "web"})).await.expect_problem(409, None);
    assert!(refused.body["detail"].as_str().unwrap().contains(&child), "{}", refused.body);
    assert_eq!(
        app.get(&format!("{project}/deletion"), &app.admin_token).await.expect(200).body["state"],
        "awaiting_confirmation"
    );
    // a second request while one is open is refused
    app.delete(&project, &app.admin_token).await.expect_problem(409, None);
    // adding a tenant to a project being deleted is refused
    app.post(&format!("{project}/tenants"), &app.admin_token, json!({"platform": platform}))
        .await
        .expect_problem(409, None);

    // the user removes the resource, then confirms by typing the identifier
    let (status, _) =
        os.call(Method::PATCH, &format!("/projects/{child_id}"), Some(json!({"project": {"enabled": false}}))).await;
    assert_eq!(status, 200);
    let (status, _) = os.call(Method::DELETE, &format!("/projects/{child_id}"), None).await;
    assert_eq!(status, 204);
    let r = app.post(&confirm, &app.admin_token, json!({"identifier": "web"})).await.expect(200);
    assert_eq!(
        (r.body["state"].as_str(), r.body["tenants"][0]["state"].as_str()),
        (Some("in_progress"), Some("deleting"))
    );
    app.replicate().await;
    let (status, _) = os.call(Method::GET, &format!("/projects/{ext}"), None).await;
    assert_eq!(status, 404, "the Keystone project is deleted");
    app.get(&project, &app.admin_token).await.expect_problem(404, None);
    let kinds = kinds(&app, &ws).await;
    for k in ["project_deletion_requested", "tenant_deletion_confirmed", "tenant_deleted", "project_deleted"] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    // the platform can go now that it holds no tenant
    app.delete(&format!("/api/v1/platforms/{platform}"), &app.admin_token).await.expect(204);
}

async fn dl5_declined_manual_deletion_keeps_the_project_with_the_declined_tenant(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (auto, manual) = (unique("auto"), unique("manual"));
    let (ws, ids) = setup(&app, &os, &[(&auto, "automatic"), (&manual, "manual")]).await;
    app.post(
        "/api/v1/users",
        &app.admin_token,
        json!({"username": "pe", "email": "pe@example.org", "password": "password-of-pe", "installation_roles": ["platform_engineer"]}),
    )
    .await
    .expect(201);
    let pe = app.sign_in("pe", "password-of-pe").await;
    let project = format!("/api/v1/workspaces/{ws}/projects/web");
    let r = app.delete(&project, &app.admin_token).await.expect(202);
    let modes: Vec<&Value> = r.body["tenants"].as_array().unwrap().iter().map(|t| &t["mode"]).collect();
    assert_eq!(modes, [&json!("automatic"), &json!("manual")]);
    // DL4: the automatic tenant goes automatically, the manual one waits for an engineer
    let r = app
        .post(&format!("{project}/deletion/confirm"), &app.admin_token, json!({"identifier": "web"}))
        .await
        .expect(200);
    let states: Vec<&Value> = r.body["tenants"].as_array().unwrap().iter().map(|t| &t["state"]).collect();
    assert_eq!(states, [&json!("deleting"), &json!("awaiting_engineer")]);
    app.replicate().await;
    let (status, _) = os.call(Method::GET, &format!("/projects/{}", ids[0]), None).await;
    assert_eq!(status, 404);
    app.get(&project, &app.admin_token).await.expect(200); // still waiting for the engineer

    // AD5: platform engineers see the pending deletion; workspace people do not decide it
    let pending = app.get(&format!("/api/v1/platforms/{manual}/deletions"), &pe).await.expect(200);
    assert_eq!(pending.body["items"][0]["project"], "web");
    assert_eq!(pending.body["items"][0]["external_id"], json!(ids[1]));
    let id = pending.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.user("ann").await;
    let ann = app.sign_in("ann", "password-of-ann").await;
    app.post(&format!("/api/v1/platforms/{manual}/deletions/{id}/decline"), &ann, json!({}))
        .await
        .expect_problem(403, None);
    // two engineers at once: the deletion is decided once
    let decline = format!("/api/v1/platforms/{manual}/deletions/{id}/decline");
    let (a, b) = tokio::join!(app.post(&decline, &pe, json!({})), app.post(&decline, &pe, json!({})));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [204, 409]);
    app.post(&decline, &pe, json!({})).await.expect_problem(409, None);
    // DL5: the project stays, holding only the declined tenant, no longer being deleted
    let page = app.get(&project, &app.admin_token).await.expect(200);
    let tenants = page.body["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!((tenants[0]["platform"].as_str(), &tenants[0]["deletion"]), (Some(manual.as_str()), &Value::Null));
    assert_eq!(app.get(&format!("{project}/deletion"), &app.admin_token).await.expect(200).body["state"], "none");
    assert!(kinds(&app, &ws).await.contains(&"project_deletion_declined".to_owned()));
    let declined = kinds(&app, &ws).await.iter().filter(|k| *k == "tenant_deletion_declined").count();
    assert_eq!(declined, 1, "declined once");
    let (status, _) = os.call(Method::GET, &format!("/projects/{}", ids[1]), None).await;
    assert_eq!(status, 200, "a declined tenant is left on its platform");

    // DL1, DL3: deleted again, and the engineer confirms it was done by hand: the project goes
    app.delete(&project, &app.admin_token).await.expect(202);
    app.post(&format!("{project}/deletion/confirm"), &app.admin_token, json!({"identifier": "web"})).await.expect(200);
    app.replicate().await;
    let pending = app.get(&format!("/api/v1/platforms/{manual}/deletions"), &pe).await.expect(200);
    let id = pending.body["items"][0]["id"].as_str().unwrap().to_owned();
    let receipt = app.post(&format!("/api/v1/platforms/{manual}/deletions/{id}/confirm"), &pe, json!({})).await;
    assert_eq!(receipt.expect(200).body["platform_error"], Value::Null);
    app.get(&project, &app.admin_token).await.expect_problem(404, None);
}

async fn dl1_a_single_tenant_is_deleted_by_the_same_rules_and_the_project_stays(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let (auto, manual) = (unique("auto"), unique("manual"));
    let (ws, ids) = setup(&app, &os, &[(&auto, "automatic"), (&manual, "manual")]).await;
    let project = format!("/api/v1/workspaces/{ws}/projects/web");
    app.delete(&format!("{project}/tenants/nope"), &app.admin_token).await.expect_problem(404, None);
    let r = app.delete(&format!("{project}/tenants/{auto}"), &app.admin_token).await.expect(202);
    assert_eq!(r.body["project_deletion"], false);
    app.post(&format!("{project}/deletion/confirm"), &app.admin_token, json!({"identifier": "web"})).await.expect(200);
    app.replicate().await;
    let (status, _) = os.call(Method::GET, &format!("/projects/{}", ids[0]), None).await;
    assert_eq!(status, 404);
    let page = app.get(&project, &app.admin_token).await.expect(200);
    let platforms: Vec<&Value> = page.body["tenants"].as_array().unwrap().iter().map(|t| &t["platform"]).collect();
    assert_eq!(platforms, [&json!(manual)], "the project stays with its other tenant");
    // a manual tenant on its own: declined, it simply stays
    app.delete(&format!("{project}/tenants/{manual}"), &app.admin_token).await.expect(202);
    app.post(&format!("{project}/deletion/confirm"), &app.admin_token, json!({"identifier": "web"})).await.expect(200);
    let pending = app.get(&format!("/api/v1/platforms/{manual}/deletions"), &app.admin_token).await.expect(200);
    let id = pending.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/platforms/{manual}/deletions/{id}/decline"), &app.admin_token, json!({}))
        .await
        .expect(204);
    let t = app.get(&format!("{project}/tenants/{manual}"), &app.admin_token).await.expect(200);
    assert_eq!(t.body["deletion"], Value::Null);
}

canopy_testkit::backend_tests!(
    dl2_automatic_tenant_goes_once_its_resources_are_removed_and_the_identifier_is_typed,
    dl5_declined_manual_deletion_keeps_the_project_with_the_declined_tenant,
    dl1_a_single_tenant_is_deleted_by_the_same_rules_and_the_project_stays,
);
