//! The administration commands beside a running server: `token create`,
//! `token list` and `token revoke`, `user add` and `user deactivate`, and
//! what SCIM clients see afterwards.

use std::process::Output;

use serde_json::json;

use crate::support::scim::{ScimClient, ScimStack};

fn stdout_of(output: &Output, command: &str) -> String {
    assert!(
        output.status.success(),
        "portcullis {command} failed with {}, stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the row of `token list` whose NAME column is `name`.
fn token_row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.get(1).is_some_and(|cell| cell == name))
        .unwrap_or_else(|| panic!("expected a token named {name} in:\n{table}"))
}

#[tokio::test]
async fn token_commands() {
    let stack = ScimStack::start(&[]).await;
    let token = stack.portcullis.token();
    let client = ScimClient::new(&stack.portcullis.proxy, &token);
    client
        .get("/Users")
        .await
        .expect_status(200, "GET /Users with a new token");

    let keep = stack
        .portcullis
        .command(&["token", "create", "--name", "kept"]);
    let kept_token = stdout_of(&keep, "token create --name kept")
        .trim()
        .to_owned();

    let table = stdout_of(&stack.portcullis.command(&["token", "list"]), "token list");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .collect();
    assert!(
        table.starts_with("ID") && table.contains("CREATED") && table.contains("LAST USED"),
        "expected a header with ID, NAME, CREATED, LAST USED, got {header:?}"
    );
    assert!(
        !table.contains(&token) && !table.contains(&token["wxt_".len()..]),
        "expected token list never to show a secret, got:\n{table}"
    );
    assert!(
        !table.contains(&kept_token),
        "expected token list never to show a secret, got:\n{table}"
    );
    assert!(
        table.ends_with('\n'),
        "expected token list to end with a newline, got {table:?}"
    );
    let row = token_row(&table, "e2e");
    assert!(
        row[0].starts_with("tok_"),
        "expected a token id first in {row:?}"
    );
    assert!(
        row[2].ends_with('Z') && row[2].contains('T'),
        "expected a creation date in {row:?}"
    );
    assert_ne!(row[3], "-", "expected the used token to have a last use");
    assert_eq!(row[4], "-", "expected the token not revoked yet");
    let id = row[0].clone();

    let revoke = stack.portcullis.command(&["token", "revoke", &id]);
    let revoked = stdout_of(&revoke, "token revoke");
    assert!(
        revoked.contains(&id),
        "expected revoke to name the id, got {revoked:?}"
    );
    client
        .get("/Users")
        .await
        .expect_error(401, "GET /Users with a revoked token");
    ScimClient::new(&stack.portcullis.proxy, &kept_token)
        .get("/Users")
        .await
        .expect_status(200, "GET /Users with the token that was kept");

    let table = stdout_of(&stack.portcullis.command(&["token", "list"]), "token list");
    let row = token_row(&table, "e2e");
    assert_ne!(
        row.last().map(String::as_str),
        Some("-"),
        "expected a revocation date"
    );

    let unknown = stack
        .portcullis
        .command(&["token", "revoke", "tok_000000000000"]);
    assert!(
        !unknown.status.success(),
        "expected revoking an unknown id to fail"
    );
}

#[tokio::test]
async fn user_commands() {
    let stack = ScimStack::start(&[]).await;
    let client = stack.client();
    let add = stack.portcullis.command(&[
        "user",
        "add",
        "--name",
        "Ada Lovelace",
        "--email",
        "ada@example.test",
    ]);
    let id = stdout_of(&add, "user add").trim().to_owned();
    assert!(!id.is_empty(), "expected user add to print the id");

    let read = client.get(&format!("/Users/{id}")).await;
    read.expect_status(200, "GET the added user");
    assert_eq!(read.body["userName"], json!("ada@example.test"), "userName");
    assert_eq!(
        read.body["displayName"],
        json!("Ada Lovelace"),
        "displayName"
    );
    assert_eq!(read.body["active"], json!(true), "active");

    let listed = stdout_of(&stack.portcullis.command(&["user", "list"]), "user list");
    assert!(
        listed.contains(&id) && listed.contains("ada@example.test"),
        "expected user list to show the user, got:\n{listed}"
    );

    let deactivate = stack.portcullis.command(&["user", "deactivate", &id]);
    stdout_of(&deactivate, "user deactivate");
    let read = client.get(&format!("/Users/{id}")).await;
    read.expect_status(200, "GET the deactivated user");
    assert_eq!(
        read.body["active"],
        json!(false),
        "expected the user inactive"
    );

    let duplicate = stack.portcullis.command(&[
        "user",
        "add",
        "--name",
        "Ada Again",
        "--email",
        "ADA@example.test",
    ]);
    assert!(
        !duplicate.status.success(),
        "expected a second user with the same email in another case to be rejected"
    );
}
