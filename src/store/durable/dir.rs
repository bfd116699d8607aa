//! The data directory (SPEC P1, P3): where the durable store lives, which
//! format it is in, and which process owns it.
//!
//! ```text
//! DIR/FORMAT_VERSION   the store's format version, one line ("1")
//! DIR/store.redb       the database (one redb file)
//! DIR/lock             locked (OS advisory lock) by the gateway using DIR
//! ```
//!
//! What opening does with what it finds:
//!
//! | found | outcome |
//! |---|---|
//! | no directory | created, then initialised as below |
//! | nothing, or only `lock` / `FORMAT_VERSION.tmp` (an initialisation cut short) | initialised: the version file is written (temporary file, fsync, rename, fsync of the directory), then the database is created |
//! | `FORMAT_VERSION` of this build's version | opened; a missing database file is created (initialisation stopped after the version) |
//! | `FORMAT_VERSION` with anything else in it | refused: unknown version |
//! | no `FORMAT_VERSION` but other files (a database included) | refused: not a data directory of ours. The version is written before the database, so our own initialisation never leaves a database without it |
//! | `lock` held by another process | refused: in use |
//!
//! A refusal changes nothing in the directory: the checks that can refuse
//! a foreign directory run before the lock file is created, and nothing is
//! written to an existing store before its version is known.
//!
//! The lock is an OS file lock on `lock`, held by the open [`DataDir`] (so
//! for the gateway's life) and released by the OS when the process dies, so
//! a crash never leaves a stale lock behind. redb also locks its own file;
//! ours covers the version file and a database not yet created.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::clip::Clipped;

/// The store format this build reads and writes. Bump it when the key layout
/// or the database's format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

const VERSION_FILE: &str = "FORMAT_VERSION";
const VERSION_TMP: &str = "FORMAT_VERSION.tmp";
const DB_FILE: &str = "store.redb";
const LOCK_FILE: &str = "lock";

/// How much of a version file is read: a real one is a few bytes, and a
/// foreign file of any size must not be read whole.
const VERSION_READ_BYTES: u64 = 64;

/// Why a data directory was refused. Every message names the path and fits
/// on one line: it is what `serve` prints before exiting.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error("data directory {} is in use by another running gateway", .0.display())]
    InUse(PathBuf),

    #[error(
        "data directory {} has store format version {}; this build reads version {FORMAT_VERSION} only",
        .path.display(), Clipped(.found)
    )]
    UnknownVersion { path: PathBuf, found: String },

    #[error(
        "{} is not a callbackstream data directory (not empty, no {VERSION_FILE}); use an empty or new directory",
        .0.display()
    )]
    NotOurs(PathBuf),

    #[error("store file {} is corrupt: {detail}", .path.display())]
    Corrupt { path: PathBuf, detail: String },

    #[error("store file {}: {detail}", .path.display())]
    Database { path: PathBuf, detail: String },
}

/// An open, locked data directory. Dropping it releases the lock.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Opens `path` for this process: creates or checks it as the module doc
    /// says, and takes its lock.
    pub fn open(path: &Path) -> Result<DataDir, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(path).map_err(io)?;
        // Refuse a foreign directory before creating the lock file in it.
        if !has_version(path)? {
            check_fresh(path)?;
        }
        let lock = lock(path)?;
        // Under the lock: another gateway may have initialised it meanwhile.
        if !has_version(path)? {
            check_fresh(path)?;
            write_version(path).map_err(io)?;
        }
        Ok(DataDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the database file is (it may not exist yet).
    pub fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }
}

/// Whether the directory declares this build's version (`false`: it has no
/// version file); an error when it declares another.
fn has_version(path: &Path) -> Result<bool, OpenError> {
    let mut text = Vec::new();
    let read = File::open(path.join(VERSION_FILE))
        .and_then(|file| file.take(VERSION_READ_BYTES).read_to_end(&mut text));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&text);
    match text.trim().parse::<u32>() {
        Ok(FORMAT_VERSION) => Ok(true),
        _ => Err(OpenError::UnknownVersion {
            path: path.to_owned(),
            found: text.trim().to_owned(),
        }),
    }
}

/// A directory without a version file may be initialised only if it holds
/// nothing but what an initialisation cut short leaves.
fn check_fresh(path: &Path) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    for entry in fs::read_dir(path).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if name != LOCK_FILE && name != VERSION_TMP {
            return Err(OpenError::NotOurs(path.to_owned()));
        }
    }
    Ok(())
}

fn lock(path: &Path) -> Result<File, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.join(LOCK_FILE))
        .map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OpenError::InUse(path.to_owned())),
        Err(TryLockError::Error(source)) => Err(OpenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the version file so that a crash leaves either none or a whole one.
fn write_version(path: &Path) -> io::Result<()> {
    let tmp = path.join(VERSION_TMP);
    let mut file = File::create(&tmp)?;
    writeln!(file, "{FORMAT_VERSION}")?;
    file.sync_all()?;
    fs::rename(&tmp, path.join(VERSION_FILE))?;
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    fn temp() -> TempDir {
        TempDir::new().unwrap()
    }

    #[test]
    fn a_missing_directory_is_created_with_a_version() {
        let scratch = temp();
        let dir = scratch.path().join("nested").join("data");
        let opened = DataDir::open(&dir).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join(VERSION_FILE)).unwrap(),
            format!("{FORMAT_VERSION}\n")
        );
        assert_eq!(opened.db_path(), dir.join(DB_FILE));
    }

    #[test]
    fn a_held_directory_is_refused_until_released() {
        let scratch = temp();
        let dir = scratch.path();
        let first = DataDir::open(dir).unwrap();
        assert!(matches!(DataDir::open(dir), Err(OpenError::InUse(_))));
        drop(first);
        DataDir::open(dir).unwrap();
    }

    #[test]
    fn a_foreign_directory_is_refused_and_left_alone() {
        let scratch = temp();
        let dir = scratch.path();
        fs::write(dir.join(DB_FILE), b"not ours").unwrap();
        assert!(matches!(DataDir::open(dir), Err(OpenError::NotOurs(_))));
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [DB_FILE], "no lock or version file was added");
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let scratch = temp();
        let dir = scratch.path();
        fs::write(dir.join(VERSION_FILE), b"2\n").unwrap();
        let err = DataDir::open(dir).unwrap_err();
        assert!(matches!(&err, OpenError::UnknownVersion { found, .. } if found == "2"));
        assert!(err.to_string().contains("reads version 1"), "{err}");
    }

    #[test]
    fn an_interrupted_initialisation_is_finished() {
        let scratch = temp();
        let dir = scratch.path();
        fs::write(dir.join(LOCK_FILE), b"").unwrap();
        fs::write(dir.join(VERSION_TMP), b"").unwrap();
        DataDir::open(dir).unwrap();
        assert!(dir.join(VERSION_FILE).exists());
    }
}
