//! ID2: SCIM provisioning. An identity provider provisions with an
//! installation API key of the role `scim_provisioner`, which opens SCIM
//! and nothing else.

use canopy_testkit::{TestApp, backend_tests};
use serde_json::json;

backend_tests!(id2_a_scim_key_is_made_by_an_admin_and_opens_nothing_of_the_rest_api);

/// Only an admin makes a SCIM key; the key is refused by every other part
/// of the API; no person can hold the role.
async fn id2_a_scim_key_is_made_by_an_admin_and_opens_nothing_of_the_rest_api(app: TestApp) {
    let ann = app.user("ann").await;
    app.post("/api/v1/api-keys", &ann, json!({"name": "entra", "role": "scim_provisioner"}))
        .await
        .expect_problem(403, None);
    let made = app
        .post("/api/v1/api-keys", &app.admin_token, json!({"name": "entra", "role": "scim_provisioner"}))
        .await
        .expect(201);
    let key = made.body["secret"].as_str().unwrap().to_owned();
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
}
