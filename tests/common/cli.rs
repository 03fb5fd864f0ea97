//! Running the binary as a user does.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The autocompress binary, quiet.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autocompress"));
    // a user's tuning cache on this machine is not read (tests/cli_bench.rs sets its own)
    c.arg("--quiet").env("AUTOCOMPRESS_TUNE", "off");
    c
}

/// A fresh, empty-named scratch path for this test process (not created).
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("autocompress-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(&d);
    d
}

/// Runs and expects an error (exit code 1, no panic) whose stderr contains every one of `needles`.
pub fn fails_with(cmd: &mut Command, needles: &[&str]) -> String {
    let out: Output = cmd.output().expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "expected exit code 1 (an error, not a panic); stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic instead of an error:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}':\n{err}");
    }
    err
}
