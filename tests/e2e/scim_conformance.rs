//! scim2-tester, the conformance checker of the python-scim project, run
//! through its command line `scim2 test` (scim2-cli 0.6.0, scim2-tester
//! 0.5.2) against the real binary. scripts/setup.sh installs both into the
//! virtualenv `.venv` at the repository root.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::scim::ScimStack;

/// Time allowed for the whole check run, which takes about 5 s.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// Interval between two checks of whether the run has ended.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The statuses scim2-tester prints at the start of a result line.
const STATUSES: [&str; 7] = [
    "SUCCESS",
    "COMPLIANT",
    "ACCEPTABLE",
    "DEVIATION",
    "ERROR",
    "CRITICAL",
    "SKIPPED",
];

fn scim2_command() -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/scim2"));
    assert!(
        path.is_file(),
        "{} is missing; run scripts/setup.sh to create the .venv with scim2-cli and scim2-tester",
        path.display()
    );
    path
}

/// Returns the result lines of the output: those that start with a
/// status. The lines after each one, indented, give the reason.
fn result_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| {
            let first = line.split(' ').next().unwrap_or_default();
            STATUSES.contains(&first)
        })
        .collect()
}

#[tokio::test]
async fn scim2_tester_passes() {
    let scim2 = scim2_command();
    let stack = ScimStack::start(&[]).await;
    let client = stack.client();
    let output_path = stack.dir.path().join("scim2-test.log");
    let output = File::create(&output_path).expect("create the scim2 output file");
    let mut child = Command::new(&scim2)
        .args(["--url", &client.base, "test"])
        .env(
            "SCIM_CLI_HEADERS",
            format!("Authorization: Bearer {}", client.token),
        )
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(
            output
                .try_clone()
                .expect("duplicate the output file handle"),
        )
        .stderr(output)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", scim2.display()));

    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("check whether scim2 exited") {
            break status;
        }
        if Instant::now() >= deadline {
            // kill fails only when the process has just exited.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scim2 test did not finish within {CHECK_TIMEOUT:?}; output:\n{}",
                std::fs::read_to_string(&output_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };

    let text = std::fs::read_to_string(&output_path).expect("read the scim2 output");
    let results = result_lines(&text);
    let failed: Vec<&str> = results
        .iter()
        .copied()
        .filter(|line| !line.starts_with("SUCCESS "))
        .collect();
    println!(
        "scim2-tester: {} checks, {} SUCCESS",
        results.len(),
        results.len() - failed.len()
    );
    assert!(
        !results.is_empty(),
        "expected scim2 test to print result lines; output:\n{text}"
    );
    assert!(
        failed.is_empty(),
        "expected every check to be SUCCESS, {} were not:\n{}\n\nfull output:\n{text}",
        failed.len(),
        failed.join("\n")
    );
    assert!(
        status.success(),
        "expected scim2 test to exit 0, got {status}; output:\n{text}"
    );
}
