//! Bad declaration files: the file, line and field, the fix, a non-zero exit, no secret.

use crate::support::{stitch, write};

async fn error_of(test: &str, text: &str) -> (i32, String) {
    let file = write(test, "stitch.toml", text);
    let run = stitch(
        &["-f", file.to_str().unwrap(), "list"],
        &[("STITCH_IT_PRESENT", "present-secret-value")],
    )
    .await;
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    (run.code, run.stderr)
}

#[tokio::test]
async fn an_unknown_field_names_its_line() {
    let (code, stderr) = error_of(
        "unknown",
        "base_url = \"http://127.0.0.1:1\"\n\n[stitches.a]\npath = \"/a\"\nretries = 3\n",
    )
    .await;
    assert_eq!(code, 3);
    assert!(stderr.contains("stitch.toml:5: "), "{stderr}");
    assert!(stderr.contains("unknown field `retries`"), "{stderr}");
    assert!(stderr.contains("Fix: "), "{stderr}");
}

#[tokio::test]
async fn a_bad_duration_names_its_line_and_field() {
    let (code, stderr) = error_of(
        "duration",
        "base_url = \"http://127.0.0.1:1\"\n[stitches.a]\npath = \"/a\"\ntimeout = { total = \"10x\" }\n",
    )
    .await;
    assert_eq!(code, 3);
    assert!(
        stderr.contains("stitch.toml:4: stitches.a.timeout.total: invalid duration \"10x\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("Fix: write a number with a unit"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_env_secret_names_the_variable_and_no_value() {
    let (code, stderr) = error_of(
        "secret",
        "base_url = \"http://127.0.0.1:1\"\nauth = { type = \"oauth2\", token_url = \"http://127.0.0.1:1/token\", client_id = { env = \"STITCH_IT_PRESENT\" }, client_secret = { env = \"STITCH_IT_SURELY_UNSET\" } }\n[stitches.a]\npath = \"/a\"\n",
    )
    .await;
    assert_eq!(code, 3);
    assert!(stderr.contains("stitch.toml:2: auth.client_secret: the environment variable STITCH_IT_SURELY_UNSET is not set"), "{stderr}");
    assert!(!stderr.contains("present-secret-value"), "{stderr}");
    let (code, stderr) = error_of("nofile", "").await;
    assert_eq!(code, 3, "{stderr}");
    let run = stitch(&["-f", "/nonexistent/stitch.toml", "list"], &[]).await;
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .contains("/nonexistent/stitch.toml: --file: cannot read"),
        "{}",
        run.stderr
    );
}
