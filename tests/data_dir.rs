//! The data directory as the binary sees it (SPEC P1, P3): `serve` creates a
//! missing one, and refuses an unknown format version, a corrupt database, a
//! directory another running gateway holds, and a directory that is not one
//! of ours, each with a one-line message and exit code 1, leaving every file
//! in it as it was.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_callbackstream");

/// How long a gateway may take to listen or to exit.
const BOUND: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn");
    command
}

/// Runs `serve` on `dir`, expecting it to refuse: its output once it exits.
fn refused(dir: &Path) -> Output {
    let mut child = serve(dir, free_port())
        .stdout(Stdio::null())
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

/// A gateway that is killed if the test ends before it is stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn start(dir: &Path) -> Running {
        let port = free_port();
        let child = serve(dir, port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < BOUND, "serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        assert!(self.0.wait().unwrap().success(), "clean exit after SIGTERM");
    }
}

/// A data directory a gateway initialised and stopped cleanly.
fn initialised() -> TempDir {
    let scratch = TempDir::new().unwrap();
    Running::start(scratch.path()).stop();
    scratch
}

#[test]
fn p1_a_missing_data_directory_is_created() {
    let scratch = TempDir::new().unwrap();
    let dir = scratch.path().join("new").join("data");
    Running::start(&dir).stop();
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
    let first = Running::start(scratch.path());
    let before = snapshot(scratch.path());
    assert_refused(
        &refused(scratch.path()),
        "in use by another running gateway",
    );
    assert_eq!(snapshot(scratch.path()), before);
    first.stop();
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
