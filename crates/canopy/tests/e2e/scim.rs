//! ID2: SCIM provisioning. An identity provider provisions with an
//! installation API key of the role `scim_provisioner`, which opens SCIM
//! and nothing else. The request sequences Microsoft Entra ID and Okta
//! publish in their SCIM guides are replayed as they are
//! (`scim_sequences.json`); the RFC's error cases, paging and attribute
//! selection are tested here; a compliance checker from PyPI
//! (`scripts/scim-tester`) runs against the server; and a person
//! deprovisioned through SCIM leaves a tenant on a real Keystone (AC10).

use std::collections::BTreeMap;

use canopy_testkit::{Resp, TestApp, backend_tests};
use serde_json::{Value, json};

use crate::tenants::{Os, unique};

backend_tests!(
    id2_a_scim_key_is_made_by_an_admin_and_opens_nothing_of_the_rest_api,
    id2_entra_id_provisioning_sequence_is_answered_as_its_guide_shows,
    id2_okta_provisioning_sequence_is_answered_as_its_guide_shows,
    id2_scim_errors_are_answered_as_rfc_7644_says,
    id2_scim_lists_page_filter_and_trim_attributes,
    id2_scim_versions_guard_changes_with_etags,
    id2_groups_provisioned_by_scim_are_read_only_for_admins,
    ac10_id2_a_person_deprovisioned_through_scim_leaves_every_tenant,
    id2_a_scim_compliance_checker_passes,
    id2_concurrent_creates_of_one_user_make_one_account,
    ad4_id2_scim_cannot_undo_an_admins_deactivation,
);

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// An admin's SCIM key named `name`.
async fn scim_key(app: &TestApp, name: &str) -> String {
    let made = app
        .post("/api/v1/api-keys", &app.admin_token, json!({"name": name, "role": "scim_provisioner"}))
        .await
        .expect(201);
    made.body["secret"].as_str().unwrap().to_owned()
}

async fn scim(app: &TestApp, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    app.request(method, &format!("/scim/v2{path}"), Some(key), body).await
}

fn user(user_name: &str, email: &str) -> Value {
    json!({"schemas": [USER], "userName": user_name, "name": {"givenName": "Ann", "familyName": "Example"},
           "emails": [{"value": email, "type": "work", "primary": true}], "active": true})
}

/// Assert a SCIM error: its status (as a string, RFC 7644) and `scimType`.
#[track_caller]
fn expect_scim_error(r: &Resp, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{:#}", r.body);
    assert_eq!(r.content_type, "application/scim+json", "{:#}", r.body);
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert_eq!(r.body["status"], json!(status.to_string()));
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{:#}", r.body);
    assert_eq!(r.body["scimType"].as_str(), scim_type, "{:#}", r.body);
}

/// Only an admin makes a SCIM key; the key is refused by every other part
/// of the API; no person can hold the role.
async fn id2_a_scim_key_is_made_by_an_admin_and_opens_nothing_of_the_rest_api(app: TestApp) {
    let ann = app.user("ann").await;
    app.post("/api/v1/api-keys", &ann, json!({"name": "entra", "role": "scim_provisioner"}))
        .await
        .expect_problem(403, None);
    let key = scim_key(&app, "entra").await;
    for path in ["/api/v1/me", "/api/v1/project-roles", "/api/v1/users", "/api/v1/workspaces"] {
        let refused = app.get(path, &key).await.expect_problem(403, None);
        assert!(refused.body["detail"].as_str().unwrap().contains("SCIM"), "{path}: {}", refused.body);
    }
    app.post("/api/v1/workspaces", &key, json!({"identifier": "x", "display_name": "X"}))
        .await
        .expect_problem(403, None);
    // a role of keys, never of people
    let person = json!({"username": "sam", "email": "sam@example.org", "first_name": "Sam", "last_name": "S",
                        "password": "password-of-sam", "installation_roles": ["scim_provisioner"]});
    app.post("/api/v1/users", &app.admin_token, person).await.expect_problem(422, Some("installation_roles"));
    app.patch("/api/v1/users/ann", &app.admin_token, json!({"installation_roles": ["scim_provisioner"]}))
        .await
        .expect_problem(422, Some("installation_roles"));
    // and SCIM opens to that key only: not to a person, not to an admin
    for token in [&ann, &app.admin_token] {
        expect_scim_error(&scim(&app, token, "GET", "/Users", None).await, 403, None);
    }
    scim(&app, &key, "GET", "/Users", None).await.expect(200);
}

/// `{{name}}` in `text` replaced by what was captured.
fn fill(text: &str, captured: &BTreeMap<String, String>) -> String {
    captured.iter().fold(text.to_owned(), |t, (k, v)| t.replace(&format!("{{{{{k}}}}}"), v))
}

/// Replay one identity provider's published request sequence; each step
/// must get the status its guide shows (a Group PATCH answers 204 where
/// Okta's guide shows 200: both are RFC 7644's, and Okta takes either).
async fn replay(app: &TestApp, key: &str, provider: &str) -> BTreeMap<String, String> {
    let all: Value = serde_json::from_str(include_str!("scim_sequences.json")).unwrap();
    let mut captured = BTreeMap::new();
    for step in all[provider].as_array().unwrap() {
        let name = step["name"].as_str().unwrap();
        let path = fill(step["path"].as_str().unwrap(), &captured);
        let body = (!step["body"].is_null()).then(|| fill(&step["body"].to_string(), &captured));
        let body = body.map(|b| serde_json::from_str::<Value>(&b).unwrap());
        let method = step["method"].as_str().unwrap();
        let r = scim(app, key, method, &path, body).await;
        let expected = step["expect_status"].as_u64().unwrap() as u16;
        let group_patch = method == "PATCH" && path.starts_with("/Groups");
        let ok = r.status.as_u16() == expected || (group_patch && expected == 200 && r.status.as_u16() == 204);
        assert!(ok, "{provider} step {name:?} ({method} {path}): {} {:#}", r.status, r.body);
        if r.status.as_u16() != 204 {
            assert_eq!(r.content_type, "application/scim+json", "{name}");
        }
        if let Some(total) = step["expect_total"].as_u64() {
            assert_eq!(r.body["totalResults"].as_u64(), Some(total), "{provider} step {name:?}: {:#}", r.body);
            assert_eq!(r.body["Resources"].as_array().map(Vec::len), Some(total as usize), "{name}");
        }
        if r.status.as_u16() == 409 {
            assert_eq!(r.body["scimType"], "uniqueness", "{name}");
        }
        if let Some(var) = step["capture"].as_str() {
            let id = r.body["id"].as_str().unwrap().to_owned();
            assert!(r.headers["location"].to_str().unwrap().ends_with(&format!("/scim/v2/{}/{id}", &path[1..])));
            assert_eq!(r.headers["etag"].to_str().unwrap(), r.body["meta"]["version"].as_str().unwrap());
            captured.insert(var.to_owned(), id);
        }
    }
    captured
}

/// The account SCIM made, as the REST API shows it.
async fn account(app: &TestApp, email: &str) -> Value {
    let found = app.get(&format!("/api/v1/users?q={email}"), &app.admin_token).await.expect(200);
    let items = found.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{email}: {items:?}");
    items[0].clone()
}

async fn installation_history(app: &TestApp, kind: &str) -> Vec<Value> {
    let h = app.get(&format!("/api/v1/admin/history?kind={kind}&limit=200"), &app.admin_token).await.expect(200);
    h.body["items"].as_array().unwrap().clone()
}

async fn id2_entra_id_provisioning_sequence_is_answered_as_its_guide_shows(app: TestApp) {
    let key = scim_key(&app, "entra-id").await;
    let ids = replay(&app, &key, "entra").await;
    // the PATCHes reached the account: its address, names, and the end
    let ann = account(&app, "testmhvaes@test.microsoft.com").await;
    assert_eq!((ann["first_name"].as_str(), ann["last_name"].as_str()), (Some("Kkom"), Some("Unua")), "{ann}");
    assert_eq!(ann["active"], false, "deprovisioned");
    // deleted: SCIM no longer knows it; the account stays, deactivated
    expect_scim_error(&scim(&app, &key, "GET", &format!("/Users/{}", ids["user_id"]), None).await, 404, None);
    // every change is in the installation history, by the SCIM client
    // one scim_changed for each write of the guide that changed something
    let all: Value = serde_json::from_str(include_str!("scim_sequences.json")).unwrap();
    let writes = all["entra"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["method"] != "GET" && s["expect_status"].as_u64().is_some_and(|c| c < 300));
    let changes = installation_history(&app, "scim_changed").await;
    assert_eq!(changes.len(), writes.count(), "{changes:?}");
    assert!(changes.iter().all(|e| e["initiator"]["name"] == "entra-id"), "{changes:?}");
    let deactivated = installation_history(&app, "user_deactivated").await;
    assert!(deactivated.iter().any(|e| e["initiator"]["name"] == "entra-id"), "{deactivated:?}");
    let group = installation_history(&app, "group_member_removed").await;
    assert_eq!(group.len(), 2, "{group:?}");
}

async fn id2_okta_provisioning_sequence_is_answered_as_its_guide_shows(app: TestApp) {
    let key = scim_key(&app, "okta").await;
    replay(&app, &key, "okta").await;
    let test_user = account(&app, "test.user@okta.local").await;
    assert_eq!(test_user["first_name"], "Another", "PUT replaced the names: {test_user}");
    assert_eq!(test_user["active"], false);
    // the group is gone with its memberships
    let groups = app.get("/api/v1/groups", &app.admin_token).await.expect(200);
    assert_eq!(groups.body["items"], json!([]));
}

async fn id2_scim_errors_are_answered_as_rfc_7644_says(app: TestApp) {
    let key = scim_key(&app, "idp").await;
    // no key, a wrong key
    let r = app.request("GET", "/scim/v2/Users", None, None).await;
    expect_scim_error(&r, 401, None);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    expect_scim_error(&scim(&app, "cnp_k_wrong", "GET", "/Users", None).await, 401, None);
    // what cannot be read, what is missing, what is taken
    let r = app.request_raw("POST", "/scim/v2/Users", Some(&key), "application/scim+json", "{not json").await;
    expect_scim_error(&r, 400, Some("invalidSyntax"));
    let huge = format!("{{\"userName\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = app.request_raw("POST", "/scim/v2/Users", Some(&key), "application/json", &huge).await;
    expect_scim_error(&r, 413, None);
    let no_name = json!({"schemas": [USER], "emails": [{"value": "a@example.org"}]});
    expect_scim_error(&scim(&app, &key, "POST", "/Users", Some(no_name)).await, 400, Some("invalidValue"));
    let no_mail = json!({"schemas": [USER], "userName": "nomail"});
    expect_scim_error(&scim(&app, &key, "POST", "/Users", Some(no_mail)).await, 400, Some("invalidValue"));
    let bad_mail = user("bad", "not-an-address");
    let r = scim(&app, &key, "POST", "/Users", Some(bad_mail)).await;
    expect_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("emails"), "{}", r.body);
    let made = scim(&app, &key, "POST", "/Users", Some(user("Ann@Corp.example", "ann@corp.example"))).await.expect(201);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let again = user("ANN@corp.example", "other@corp.example");
    expect_scim_error(&scim(&app, &key, "POST", "/Users", Some(again)).await, 409, Some("uniqueness"));
    // a local account's address is not taken over
    app.user("bob").await;
    let r = scim(&app, &key, "POST", "/Users", Some(user("bob", "bob@example.org"))).await;
    expect_scim_error(&r, 409, Some("uniqueness"));
    // filters
    let r = scim(&app, &key, "GET", "/Users?filter=userName%20eq", None).await;
    expect_scim_error(&r, 400, Some("invalidFilter"));
    // PATCH
    let p = |ops: Value| Some(json!({"schemas": [PATCH], "Operations": ops}));
    let path = format!("/Users/{id}");
    let r = scim(&app, &key, "PATCH", &path, p(json!([{"op": "remove"}]))).await;
    expect_scim_error(&r, 400, Some("noTarget"));
    let r = scim(&app, &key, "PATCH", &path, p(json!([{"op": "replace", "path": "id", "value": "x"}]))).await;
    expect_scim_error(&r, 400, Some("mutability"));
    let r = scim(&app, &key, "PATCH", &path, p(json!([{"op": "add", "path": "emails[type eq", "value": 1}]))).await;
    expect_scim_error(&r, 400, Some("invalidPath"));
    let r = scim(&app, &key, "PATCH", &path, p(json!([{"op": "remove", "path": "emails"}]))).await;
    expect_scim_error(&r, 400, Some("invalidValue"));
    let r = scim(&app, &key, "PATCH", &path, p(json!([{"op": "replace", "path": "active", "value": "maybe"}]))).await;
    expect_scim_error(&r, 400, Some("invalidValue"));
    // nothing of a refused PATCH was written
    let now = scim(&app, &key, "GET", &path, None).await.expect(200);
    assert_eq!(now.body["active"], true);
    assert_eq!(now.body["meta"]["version"], made.body["meta"]["version"]);
    // a local account is no User: not to read, change or delete through SCIM
    let bob_id = app.store.read().await.unwrap().user_by_username("bob").await.unwrap().unwrap().id;
    let local = format!("/Users/{bob_id}");
    expect_scim_error(&scim(&app, &key, "GET", &local, None).await, 404, None);
    expect_scim_error(&scim(&app, &key, "PUT", &local, Some(user("bob", "bob@example.org"))).await, 404, None);
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    expect_scim_error(&scim(&app, &key, "PATCH", &local, Some(off)).await, 404, None);
    expect_scim_error(&scim(&app, &key, "DELETE", &local, None).await, 404, None);
    assert_eq!(account(&app, "bob@example.org").await["active"], true);
    // unknown resources and paths, methods, features
    expect_scim_error(&scim(&app, &key, "GET", "/Users/not-a-uuid", None).await, 404, None);
    let nil = "/Users/00000000-0000-0000-0000-000000000000";
    expect_scim_error(&scim(&app, &key, "DELETE", nil, None).await, 404, None);
    expect_scim_error(&scim(&app, &key, "GET", "/Widgets", None).await, 404, None);
    expect_scim_error(&scim(&app, &key, "POST", "/ServiceProviderConfig", Some(json!({}))).await, 405, None);
    expect_scim_error(&scim(&app, &key, "DELETE", "/Schemas", None).await, 405, None);
    expect_scim_error(&scim(&app, &key, "POST", "/.search", Some(json!({}))).await, 501, None);
    expect_scim_error(&scim(&app, &key, "POST", "/Bulk", Some(json!({}))).await, 501, None);
    // group members must be Users SCIM made
    let g = json!({"schemas": [GROUP], "displayName": "Ops", "members": [{"value": bob_id}]});
    let r = scim(&app, &key, "POST", "/Groups", Some(g)).await;
    expect_scim_error(&r, 400, Some("invalidValue"));
    // discovery says what is offered
    let spc = scim(&app, &key, "GET", "/ServiceProviderConfig", None).await.expect(200);
    assert_eq!(
        (spc.body["patch"]["supported"].as_bool(), spc.body["bulk"]["supported"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(spc.body["etag"]["supported"], true);
    let types = scim(&app, &key, "GET", "/ResourceTypes", None).await.expect(200);
    assert_eq!(types.body["totalResults"], 2);
    let schema = scim(&app, &key, "GET", &format!("/Schemas/{USER}"), None).await.expect(200);
    assert!(schema.body["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "userName"));
    expect_scim_error(&scim(&app, &key, "GET", "/Schemas/urn:nothing", None).await, 404, None);
}

async fn id2_scim_lists_page_filter_and_trim_attributes(app: TestApp) {
    let key = scim_key(&app, "idp").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut u = user(&format!("user{i}@corp.example"), &format!("user{i}@corp.example"));
        u["emails"].as_array_mut().unwrap().push(json!({"value": format!("alias{i}@home.example"), "type": "home"}));
        u["externalId"] = json!(format!("ext-{i}"));
        u["title"] = json!(if i % 2 == 0 { "Engineer" } else { "Manager" });
        ids.push(scim(&app, &key, "POST", "/Users", Some(u)).await.expect(201).body["id"].as_str().unwrap().to_owned());
    }
    // pages by startIndex, in a stable order, each once
    let mut seen = Vec::new();
    for start in [1, 4, 7] {
        let r = scim(&app, &key, "GET", &format!("/Users?startIndex={start}&count=3"), None).await.expect(200);
        assert_eq!((r.body["totalResults"].as_i64(), r.body["startIndex"].as_i64()), (Some(7), Some(start)));
        assert_eq!(r.body["itemsPerPage"].as_u64(), Some(r.body["Resources"].as_array().unwrap().len() as u64));
        seen.extend(r.body["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    for start in ["0", "-5"] {
        let r = scim(&app, &key, "GET", &format!("/Users?startIndex={start}&count=2"), None).await.expect(200);
        assert_eq!((r.body["startIndex"].as_i64(), r.body["itemsPerPage"].as_i64()), (Some(1), Some(2)), "{start}");
    }
    let r = scim(&app, &key, "GET", "/Users?startIndex=1000", None).await.expect(200);
    assert_eq!((r.body["totalResults"].as_i64(), r.body["Resources"].as_array().map(Vec::len)), (Some(7), Some(0)));
    expect_scim_error(&scim(&app, &key, "GET", "/Users?count=many", None).await, 400, Some("invalidValue"));
    let none = scim(&app, &key, "GET", "/Users?count=0", None).await.expect(200);
    assert_eq!(
        (none.body["totalResults"].as_i64(), none.body["Resources"].as_array().map(Vec::len)),
        (Some(7), Some(0))
    );
    // filters answered by an index, and by a scan
    let q = |f: &str| format!("/Users?filter={}", form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>());
    for (filter, total) in [
        ("userName eq \"USER3@corp.example\"", 1),
        ("externalId eq \"ext-4\"", 1),
        ("externalId eq \"EXT-4\"", 0),
        ("emails.value eq \"user5@corp.example\"", 1),
        ("emails.value eq \"ALIAS5@home.example\"", 1),
        ("emails[type eq \"home\"].value eq \"alias2@home.example\"", 1),
        ("emails[type eq \"work\" and value eq \"user6@corp.example\"]", 1),
        ("title eq \"Engineer\"", 4),
        ("title eq \"engineer\" and userName sw \"user0\"", 1),
        ("userName co \"corp\" and not (title eq \"Manager\")", 4),
        ("externalId pr", 7),
        ("userName eq \"user1@corp.example\" or userName eq \"user2@corp.example\"", 2),
    ] {
        let r = scim(&app, &key, "GET", &q(filter), None).await.expect(200);
        assert_eq!(r.body["totalResults"].as_i64(), Some(total), "{filter}: {:#}", r.body);
    }
    // attributes and excludedAttributes
    let r =
        scim(&app, &key, "GET", &format!("{}&attributes=userName,name.givenName", q("externalId eq \"ext-1\"")), None)
            .await
            .expect(200);
    let one = &r.body["Resources"][0];
    assert_eq!(one["userName"], "user1@corp.example");
    assert_eq!(one["name"], json!({"givenName": "Ann"}));
    assert!(one.get("emails").is_none() && one.get("title").is_none() && one["id"].is_string());
    let r =
        scim(&app, &key, "GET", &format!("/Users/{}?excludedAttributes=emails,title", ids[0]), None).await.expect(200);
    assert!(r.body.get("emails").is_none() && r.body.get("title").is_none() && r.body["userName"].is_string());
}

async fn id2_scim_versions_guard_changes_with_etags(app: TestApp) {
    let key = scim_key(&app, "idp").await;
    let made = scim(&app, &key, "POST", "/Users", Some(user("ann@corp.example", "ann@corp.example"))).await.expect(201);
    let path = format!("/scim/v2/Users/{}", made.body["id"].as_str().unwrap());
    let v1 = made.headers["etag"].to_str().unwrap().to_owned();
    // unchanged: 304
    let r = app.request_with("GET", &path, Some(&key), None, &[("if-none-match", &v1)]).await;
    assert_eq!(r.status.as_u16(), 304);
    // a change with the version read
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]});
    let r = app.request_with("PATCH", &path, Some(&key), Some(patch.clone()), &[("if-match", &v1)]).await.expect(200);
    let v2 = r.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    // a change that changes nothing is no new version
    let r = app.request_with("PATCH", &path, Some(&key), Some(patch.clone()), &[]).await.expect(200);
    assert_eq!(r.headers["etag"].to_str().unwrap(), v2);
    // the stale version is refused, and nothing is written
    let stale = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Stale"}]});
    let r = app.request_with("PATCH", &path, Some(&key), Some(stale), &[("if-match", &v1)]).await;
    expect_scim_error(&r, 412, None);
    let r = app.request_with("DELETE", &path, Some(&key), None, &[("if-match", &v1)]).await;
    expect_scim_error(&r, 412, None);
    let now = app.request("GET", &path, Some(&key), None).await.expect(200);
    assert_eq!(now.body["title"], "Lead");
    // an admin's change shows as a new version too
    let username = account(&app, "ann@corp.example").await["username"].as_str().unwrap().to_owned();
    app.patch(&format!("/api/v1/users/{username}"), &app.admin_token, json!({"active": false})).await.expect(200);
    let after = app.request("GET", &path, Some(&key), None).await.expect(200);
    assert_eq!(after.body["active"], false);
    assert_ne!(after.headers["etag"].to_str().unwrap(), v2);
    // the names and address are the provider's, not an admin's to change
    app.patch(&format!("/api/v1/users/{username}"), &app.admin_token, json!({"first_name": "Changed"}))
        .await
        .expect_problem(409, None);
    app.request_with("DELETE", &path, Some(&key), None, &[("if-match", "*")]).await.expect(204);
}

async fn id2_groups_provisioned_by_scim_are_read_only_for_admins(app: TestApp) {
    let key = scim_key(&app, "idp").await;
    let ann = scim(&app, &key, "POST", "/Users", Some(user("ann@corp.example", "ann@corp.example"))).await.expect(201);
    let g = json!({"schemas": [GROUP], "displayName": "Platform Engineers!", "members": [{"value": ann.body["id"]}]});
    let made = scim(&app, &key, "POST", "/Groups", Some(g)).await.expect(201);
    assert_eq!(made.body["members"][0]["value"], ann.body["id"]);
    // the group as admins see it: its identifier made from its name
    let shown = app.get("/api/v1/groups/platform-engineers", &app.admin_token).await.expect(200);
    assert_eq!(
        (shown.body["display_name"].as_str(), shown.body["provisioned"].as_bool()),
        (Some("Platform Engineers!"), Some(true))
    );
    app.patch("/api/v1/groups/platform-engineers", &app.admin_token, json!({"display_name": "Mine"}))
        .await
        .expect_problem(409, None);
    let bob = app.user("bob").await;
    drop(bob);
    app.post("/api/v1/groups/platform-engineers/members", &app.admin_token, json!({"user": "bob"}))
        .await
        .expect_problem(409, None);
    app.delete("/api/v1/groups/platform-engineers", &app.admin_token).await.expect_problem(409, None);
    let ann_name = account(&app, "ann@corp.example").await["username"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/groups/platform-engineers/members/{ann_name}"), &app.admin_token)
        .await
        .expect_problem(409, None);
    // a User SCIM deletes leaves the provider's groups with it (AC3)
    scim(&app, &key, "DELETE", &format!("/Users/{}", ann.body["id"].as_str().unwrap()), None).await.expect(204);
    let g = scim(&app, &key, "GET", &format!("/Groups/{}", made.body["id"].as_str().unwrap()), None).await.expect(200);
    assert_eq!(g.body["members"], json!([]));
    assert_ne!(g.body["meta"]["version"], made.body["meta"]["version"]);
    // a group of the admins' own stays theirs, and is not SCIM's
    app.post("/api/v1/groups", &app.admin_token, json!({"identifier": "local", "display_name": "Local"}))
        .await
        .expect(201);
    let listed = scim(&app, &key, "GET", "/Groups", None).await.expect(200);
    assert_eq!(listed.body["totalResults"], 1);
    // a second group of the same name is refused, in any case
    let twin = json!({"schemas": [GROUP], "displayName": "platform engineers!"});
    expect_scim_error(&scim(&app, &key, "POST", "/Groups", Some(twin)).await, 409, Some("uniqueness"));
}

/// AC10 through SCIM: a person made by SCIM, bound in a project directly
/// and through a SCIM group, loses the group's access when the group loses
/// them (AC3) and everything when SCIM deactivates them: their sessions end
/// and, on a real Keystone, they leave the tenant.
async fn ac10_id2_a_person_deprovisioned_through_scim_leaves_every_tenant(app: TestApp) {
    let key = scim_key(&app, "entra-id").await;
    let ann_id = {
        let r = scim(&app, &key, "POST", "/Users", Some(user("ann.scim@corp.example", "ann.scim@corp.example"))).await;
        r.expect(201).body["id"].as_str().unwrap().to_owned()
    };
    let bea = scim(&app, &key, "POST", "/Users", Some(user("bea.scim@corp.example", "bea.scim@corp.example"))).await;
    let bea_id = bea.expect(201).body["id"].as_str().unwrap().to_owned();
    let g = json!({"schemas": [GROUP], "displayName": "Readers", "members": [{"value": bea_id}]});
    let group_id =
        scim(&app, &key, "POST", "/Groups", Some(g)).await.expect(201).body["id"].as_str().unwrap().to_owned();
    // a session of ann's (an admin's password for her, to sign in as she would through the provider)
    app.patch("/api/v1/users/ann.scim", &app.admin_token, json!({"password": "password-of-ann-scim"}))
        .await
        .expect(200);
    let ann_session = app.sign_in("ann.scim", "password-of-ann-scim").await;
    app.patch("/api/v1/users/bea.scim", &app.admin_token, json!({"password": "password-of-bea-scim"}))
        .await
        .expect(200);
    let bea_session = app.sign_in("bea.scim", "password-of-bea-scim").await;
    let projects_of_bea = async || app.get("/api/v1/me", &bea_session).await.expect(200).body["projects"].clone();
    // the workspace's owner gives access as to anyone
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    app.invite(&app.admin_token, &ws, "ann.scim", "workspace_member").await;
    let members = format!("/api/v1/workspaces/{ws}/members");
    app.post(&members, &app.admin_token, json!({"group": "readers", "role": "workspace_member"})).await.expect(201);
    let os = Os::get();
    let tenants = format!("/api/v1/workspaces/{ws}/projects/web/tenants");
    if let Some(os) = &os {
        let platform = unique("os");
        app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
        app.post(&tenants, &app.admin_token, json!({"platform": platform})).await.expect(201);
    }
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    app.post(&bindings, &app.admin_token, json!({"user": "ann.scim", "role": "project_user"})).await.expect(201);
    app.post(&bindings, &app.admin_token, json!({"group": "readers", "role": "project_user"})).await.expect(201);
    app.replicate().await;
    assert_eq!(projects_of_bea().await.as_array().map(Vec::len), Some(1), "bea holds the group's access");
    let ext = match &os {
        Some(os) => {
            let t = app.get(&tenants, &app.admin_token).await.expect(200);
            let ext = t.body["items"][0]["external_id"].as_str().unwrap().to_owned();
            let both: std::collections::BTreeSet<String> =
                ["ann.scim:member", "bea.scim:member"].map(str::to_owned).into();
            assert_eq!(os.held(&ext).await, both);
            Some(ext)
        }
        None => None,
    };
    // Entra removes bea from the group: she loses what it gave (AC3)
    let remove =
        json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": bea_id}]}]});
    scim(&app, &key, "PATCH", &format!("/Groups/{group_id}"), Some(remove)).await.expect(204);
    assert_eq!(projects_of_bea().await, json!([]), "bea holds nothing now");
    // Entra deprovisions ann, its way: active as the string "False"
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let r = scim(&app, &key, "PATCH", &format!("/Users/{ann_id}"), Some(off)).await.expect(200);
    assert_eq!(r.body["active"], false);
    app.get("/api/v1/me", &ann_session).await.expect_problem(401, None);
    app.replicate().await;
    if let (Some(os), Some(ext)) = (&os, &ext) {
        assert_eq!(os.held(ext).await, std::collections::BTreeSet::new());
    }
    // recorded in the workspace, by the SCIM client
    let h =
        app.get(&format!("/api/v1/workspaces/{ws}/history?kind=user_deactivated"), &app.admin_token).await.expect(200);
    let e = &h.body["items"][0];
    assert_eq!((e["initiator"]["name"].as_str(), e["details"]["user"].as_str()), (Some("entra-id"), Some("ann.scim")));
}

/// scim2-tester (PyPI, installed by `scripts/scim-tester`) checks the
/// discovery endpoints and create, read, list, replace, PATCH and delete of
/// Users and Groups against the schemas the server publishes.
async fn id2_a_scim_compliance_checker_passes(app: TestApp) {
    let Some([checker]) = canopy_testkit::component(["CANOPY_TEST_SCIM_TESTER"], "the SCIM checker (scim2-tester)")
    else {
        return;
    };
    let key = scim_key(&app, "checker").await;
    let mut parts = checker.split_whitespace();
    let program = parts.next().unwrap().to_owned();
    let out = tokio::process::Command::new(program)
        .args(parts)
        .arg(format!("{}/scim/v2", app.base))
        .arg(&key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the SCIM checker failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("object_creation"), "the checker ran no check:\n{stdout}");
}

/// An identity provider retrying a create while the first is still running
/// gets one account, and a 409 for every other attempt (never a 500, never
/// two accounts).
async fn id2_concurrent_creates_of_one_user_make_one_account(app: TestApp) {
    let key = scim_key(&app, "idp").await;
    let attempts =
        (0..8).map(|_| scim(&app, &key, "POST", "/Users", Some(user("race@corp.example", "race@corp.example"))));
    let answers = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    for r in answers.iter().filter(|r| r.status.as_u16() == 409) {
        expect_scim_error(r, 409, Some("uniqueness"));
    }
    let listed = scim(&app, &key, "GET", "/Users", None).await.expect(200);
    assert_eq!(listed.body["totalResults"], 1);
}

/// An account an admin deactivates (or an emergency revocation ends) stays
/// so: the identity provider's next synchronisation cannot reactivate it;
/// once an admin reactivates it, the provider owns its state again.
async fn ad4_id2_scim_cannot_undo_an_admins_deactivation(app: TestApp) {
    let key = scim_key(&app, "entra").await;
    let made = scim(&app, &key, "POST", "/Users", Some(user("ivy@corp.example", "ivy@corp.example"))).await.expect(201);
    let path = format!("/Users/{}", made.body["id"].as_str().unwrap());
    let on = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]});
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    // the emergency revocation of an admin
    let revoke = json!({"user": "ivy", "justification": "stolen laptop"});
    app.post("/api/v1/admin/emergency/revoke", &app.admin_token, revoke).await.expect(201);
    let r = scim(&app, &key, "PATCH", &path, Some(on.clone())).await;
    expect_scim_error(&r, 400, Some("mutability"));
    assert!(r.body["detail"].as_str().unwrap().contains("only an admin"), "{}", r.body);
    let mut put = user("ivy@corp.example", "ivy@corp.example");
    put["title"] = json!("Lead");
    expect_scim_error(&scim(&app, &key, "PUT", &path, Some(put.clone())).await, 400, Some("mutability"));
    assert_eq!(account(&app, "ivy@corp.example").await["active"], false);
    // the provider may say what Canopy says: off
    scim(&app, &key, "PATCH", &path, Some(off.clone())).await.expect(200);
    // an admin reactivates: the provider's again, to switch off and on
    app.patch("/api/v1/users/ivy", &app.admin_token, json!({"active": true})).await.expect(200);
    scim(&app, &key, "PATCH", &path, Some(off)).await.expect(200);
    let r = scim(&app, &key, "PATCH", &path, Some(on)).await.expect(200);
    assert_eq!(r.body["active"], true);
    scim(&app, &key, "PUT", &path, Some(put)).await.expect(200);
}
