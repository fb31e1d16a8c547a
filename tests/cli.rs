//! End-to-end tests of the `einc` binary: exit statuses and messages as a user sees them.

use std::process::Command;

fn einc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_einc"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = einc().arg("--help").output().expect("einc runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["check", "explain", "ir", "eval", "run"] {
        assert!(text.contains(cmd), "help lacks {cmd}: {text}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = einc().arg("frobnicate").output().expect("einc runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}
