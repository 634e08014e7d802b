//! TN6 for Azure, first step: no emulator of Azure Resource Manager or
//! Microsoft Graph installs from a registry, so the tests run against a
//! stateful fake of their published API (`scripts/azure_fake.py`,
//! `docs/platforms/azure-api.md`). A fake that Microsoft's own clients
//! cannot talk to would prove nothing: this test drives it with them
//! (`scripts/azure_fidelity.py`: azure-identity, azure-mgmt-subscription,
//! azure-mgmt-authorization, azure-mgmt-resource, msgraph-sdk), through the
//! sign-in, a subscription alias and its polling, role definitions and
//! assignments with paging and their 409, Graph's users, a throttled call
//! retried, and a lost answer that leaves no duplicate.

use crate::component;

#[tokio::test]
async fn tn6_the_azure_fake_is_what_microsofts_own_sdks_talk_to() {
    let Some([url, ca, tenant, client_id, secret, fidelity]) = component(
        [
            "CANOPY_TEST_AZURE_URL",
            "CANOPY_TEST_AZURE_CA",
            "CANOPY_TEST_AZURE_TENANT",
            "CANOPY_TEST_AZURE_CLIENT_ID",
            "CANOPY_TEST_AZURE_CLIENT_SECRET",
            "CANOPY_TEST_AZURE_FIDELITY",
        ],
        "Azure fake",
    ) else {
        return;
    };
    let mut command = fidelity.split_whitespace();
    let program = command.next().unwrap();
    let out = tokio::process::Command::new(program)
        .args(command)
        .args([&url, &ca, &tenant, &client_id, &secret])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Microsoft's SDKs found the fake unfaithful:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().filter(|l| l.starts_with("PASS ")).count() >= 20, "too few checks ran:\n{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
}
