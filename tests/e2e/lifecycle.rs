//! The process around the proxy: shutdown on SIGTERM and the `check-config`
//! command.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::portcullis::portcullis_command;
use crate::support::Stack;

/// Time allowed from SIGTERM to exit: the test configuration's grace period
/// (1 s) and shutdown timeout (1 s), with room for a loaded machine.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn example_config() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/portcullis.example.toml"
    ))
}

fn check_config(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = portcullis_command();
    command.arg("check-config").arg("--config").arg(config);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("portcullis check-config runs")
}

#[tokio::test]
async fn sigterm_stops_within_grace() {
    let mut stack = Stack::start().await;
    stack.portcullis.terminate();
    let status = stack.portcullis.wait_exit(STOP_TIMEOUT).await;
    let Some(status) = status else {
        panic!(
            "expected portcullis to exit within {STOP_TIMEOUT:?} after SIGTERM; log:\n{}",
            stack.portcullis.log()
        );
    };
    assert!(
        status.success(),
        "expected a clean exit after SIGTERM, got {status}; log:\n{}",
        stack.portcullis.log()
    );
}

#[tokio::test]
async fn check_config_cli() {
    let secret = [("PORTCULLIS_OIDC__CLIENT_SECRET", "example-secret")];
    let valid = check_config(example_config(), &secret);
    assert!(
        valid.status.success(),
        "expected the example configuration with a client secret to be valid; stderr:\n{}",
        String::from_utf8_lossy(&valid.stderr)
    );

    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let example = std::fs::read_to_string(example_config()).expect("read the example");
    assert!(
        example.contains("\n[session]\n"),
        "expected a [session] table in the example configuration"
    );
    let misspelt = example.replace("\n[session]\n", "\n[session]\ncookie_nmae = \"x\"\n");
    let misspelt_path = dir.path().join("misspelt.toml");
    std::fs::write(&misspelt_path, misspelt).expect("write the misspelt configuration");
    let unknown = check_config(&misspelt_path, &secret);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success(),
        "expected an unknown key to be rejected"
    );
    assert!(
        stderr.contains("session.cookie_nmae"),
        "expected the error to name session.cookie_nmae, got:\n{stderr}"
    );

    let bad_ttl = [
        ("PORTCULLIS_OIDC__CLIENT_SECRET", "example-secret"),
        ("PORTCULLIS_SESSION__TTL", "soon"),
    ];
    let invalid = check_config(example_config(), &bad_ttl);
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        !invalid.status.success(),
        "expected PORTCULLIS_SESSION__TTL=soon to be rejected"
    );
    assert!(
        stderr.contains("session.ttl"),
        "expected the error to name session.ttl, got:\n{stderr}"
    );
}
