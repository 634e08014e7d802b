//! TN6 for Cloud Foundry, first step: the Cloud Controller and UAA do not
//! install from a registry, so the tests will run against a stateful fake
//! of their published V3 API (`scripts/cf_fake.py`,
//! `docs/platforms/cloudfoundry-api.md`). This test holds the fake to what
//! the Python client `cloudfoundry-client` accepts (`scripts/cf_fidelity.py`):
//! the sign-in and its refresh, spaces and their deletion job, users, the
//! role rules and their 422s, pagination, the rate limit, a lost answer.

use crate::component;

#[tokio::test]
async fn tn6_the_cloud_foundry_fake_is_what_its_python_client_talks_to() {
    let Some([url, ca, user, password, org, fidelity]) = component(
        [
            "CANOPY_TEST_CF_URL",
            "CANOPY_TEST_CF_CA",
            "CANOPY_TEST_CF_USERNAME",
            "CANOPY_TEST_CF_PASSWORD",
            "CANOPY_TEST_CF_ORG",
            "CANOPY_TEST_CF_FIDELITY",
        ],
        "Cloud Foundry fake",
    ) else {
        return;
    };
    let mut command = fidelity.split_whitespace();
    let program = command.next().unwrap();
    let out = tokio::process::Command::new(program)
        .args(command)
        .args([&url, &ca, &user, &password, &org])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Cloud Foundry client found the fake unfaithful:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().filter(|l| l.starts_with("PASS ")).count() >= 20, "too few checks ran:\n{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}
