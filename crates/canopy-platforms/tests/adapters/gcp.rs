//! TN6 for Google Cloud, first step: no emulator of Resource Manager, IAM
//! or Cloud Asset installs from a registry, so the tests will run against a
//! stateful fake of their published API (`scripts/gcp_fake.py`,
//! `docs/platforms/gcp-api.md`). This test holds the fake to what Google's
//! own Python clients accept (`scripts/gcp_fidelity.py`: google-auth,
//! google-cloud-resource-manager, google-cloud-asset over REST): the sign-in
//! with a service-account key, a project and its long-running operation,
//! IAM's read-modify-write with etags and its 409 ABORTED, asset search,
//! deletion, throttling, and a lost answer.

use crate::component;

#[tokio::test]
async fn tn6_the_google_cloud_fake_is_what_googles_own_clients_talk_to() {
    let Some([url, ca, key, folder, fidelity]) = component(
        [
            "CANOPY_TEST_GCP_URL",
            "CANOPY_TEST_GCP_CA",
            "CANOPY_TEST_GCP_KEY",
            "CANOPY_TEST_GCP_FOLDER",
            "CANOPY_TEST_GCP_FIDELITY",
        ],
        "Google Cloud fake",
    ) else {
        return;
    };
    let mut command = fidelity.split_whitespace();
    let program = command.next().unwrap();
    let out =
        tokio::process::Command::new(program).args(command).args([&url, &ca, &key, &folder]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Google's clients found the fake unfaithful:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().filter(|l| l.starts_with("PASS ")).count() >= 20, "too few checks ran:\n{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}
