//! The data directory as the binary sees it (SPEC P1, P3): `serve` creates a
//! missing one, and refuses an unknown format version, a corrupt database, a
//! directory another running gateway holds, and a directory that is not one
//! of ours, each with a one-line message and exit code 1, leaving every file
//! in it as it was.

mod child;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use child::{BOUND, ChildGateway, free_port, serve};
use tempfile::TempDir;

/// Runs `serve` on `dir`, expecting it to refuse: its output once it exits.
fn refused(dir: &Path) -> Output {
    let mut child = serve(dir, free_port())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > BOUND {
            let _ = child.kill();
            panic!("serve on {} did not exit within {BOUND:?}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Checks a refusal: exit code 1 and one line naming the reason.
fn assert_refused(output: &Output, reason: &str) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit code; said: {said}");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {said}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(reason),
        "{reason:?} expected: {said}"
    );
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        files.insert(path.clone(), fs::read(&path).unwrap());
    }
    files
}

/// A data directory a gateway initialised and stopped cleanly.
fn initialised() -> TempDir {
    let scratch = TempDir::new().unwrap();
    assert!(ChildGateway::start(scratch.path()).stop().success());
    scratch
}

#[test]
fn p1_a_missing_data_directory_is_created() {
    let scratch = TempDir::new().unwrap();
    let dir = scratch.path().join("new").join("data");
    assert!(ChildGateway::start(&dir).stop().success());
    assert_eq!(
        fs::read_to_string(dir.join("FORMAT_VERSION")).unwrap(),
        "1\n"
    );
    assert!(dir.join("store.redb").is_file());
}

#[test]
fn p3_an_unknown_format_version_is_refused_untouched() {
    let scratch = initialised();
    fs::write(scratch.path().join("FORMAT_VERSION"), "2\n").unwrap();
    let before = snapshot(scratch.path());
    assert_refused(&refused(scratch.path()), "format version \"2\"");
    assert_eq!(snapshot(scratch.path()), before);
}

#[test]
fn p3_a_corrupt_database_is_refused_untouched() {
    let scratch = initialised();
    let db = scratch.path().join("store.redb");
    // Everything after redb's header page overwritten: its trees and both
    // commit slots' roots now fail their checksums.
    let mut bytes = fs::read(&db).unwrap();
    bytes[4096..].fill(0xAB);
    fs::write(&db, &bytes).unwrap();
    let before = snapshot(scratch.path());
    assert_refused(&refused(scratch.path()), "is corrupt");
    assert_eq!(snapshot(scratch.path()), before);
}

#[test]
fn p3_a_directory_another_gateway_holds_is_refused_untouched() {
    let scratch = initialised();
    let first = ChildGateway::start(scratch.path());
    let before = snapshot(scratch.path());
    assert_refused(
        &refused(scratch.path()),
        "in use by another running gateway",
    );
    assert_eq!(snapshot(scratch.path()), before);
    assert!(first.stop().success());
}

#[test]
fn p3_a_directory_that_is_not_ours_is_refused_untouched() {
    let scratch = TempDir::new().unwrap();
    fs::write(scratch.path().join("notes.txt"), "mine").unwrap();
    let before = snapshot(scratch.path());
    assert_refused(
        &refused(scratch.path()),
        "not a callbackstream data directory",
    );
    assert_eq!(snapshot(scratch.path()), before);
}
