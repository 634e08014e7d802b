//! SE8: the served OpenAPI document tells the truth. Schemathesis (PyPI,
//! installed by `scripts/schemathesis`) drives every operation of the
//! document the server serves with generated valid and invalid input; every
//! answer must be documented (status, content type and body schema) and none
//! may be a 5xx.

use canopy_testkit::TestApp;
use serde_json::json;

async fn se8_every_answer_to_generated_input_is_documented_and_none_is_a_5xx(app: TestApp) {
    let Some([schemathesis]) = canopy_testkit::component(["CANOPY_TEST_SCHEMATHESIS"], "schemathesis") else {
        return;
    };
    // an installation admin key reaches every operation, and has no session to end
    let key = app.post("/api/v1/api-keys", &app.admin_token, json!({"name": "fuzz", "role": "admin"})).await;
    let key = key.expect(201).body["secret"].as_str().unwrap().to_owned();
    // something for generated paths to find
    app.workspace(&app.admin_token, "w").await;
    app.project(&app.admin_token, "w", "web").await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&schemathesis)
        .current_dir(dir.path())
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", app.base),
            "--header",
            &format!("Authorization: Bearer {key}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "20",
            "--seed",
            "20261204",
            // one worker: the operations run in one order, so that a seed's run
            // is the same every time (two workers interleave them on the one
            // server by their timing: a CI run failed once that no repeat of the
            // seed reproduced); and one is no slower where two cores are shared
            // with the server
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers the document does not describe:\n{}\n{}",
        failures(&stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Tested: "), "schemathesis ran no operation:\n{stdout}");
}

/// The part of schemathesis's report that says what failed (from its
/// FAILURES section on), so that a failure's cause survives a CI log that
/// keeps only the ends of the output; the whole report when it has no such
/// section.
fn failures(report: &str) -> &str {
    let from = report.find("FAILURES").map_or(0, |i| report[..i].rfind('\n').map_or(0, |n| n + 1));
    &report[from..]
}

canopy_testkit::backend_tests!(se8_every_answer_to_generated_input_is_documented_and_none_is_a_5xx);
