//! The project stands alone: run from a copy of its tracked files in a
//! directory with nothing beside it, the checks find everything they need in
//! the tree itself and in what `scripts/install-deps` installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies every file git tracks (as it is in the work tree) into `dest`.
fn copy_tracked_files(dest: &Path) {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo())
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).expect("a UTF-8 file name");
        let from = repo().join(name);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dest.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|err| panic!("copy {name}: {err}"));
    }
}

#[test]
fn the_compose_check_passes_in_a_copy_with_nothing_beside_it() {
    let outer = tempfile::tempdir().unwrap();
    let copy = outer.path().join("p7-weather");
    copy_tracked_files(&copy);
    assert!(!outer.path().join("shared").exists());

    let output = Command::new(copy.join("scripts/check-container-stack"))
        .args(["--only", "compose schema"])
        .current_dir(&copy)
        .env_remove("P7_COMPOSE_SCHEMA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("ok   compose schema"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
}
