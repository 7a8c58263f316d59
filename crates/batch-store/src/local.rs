//! A store on the local file system. Durability comes from fsyncing the file
//! before the rename and the directory after it: without the second fsync a
//! power cut can forget the rename even though the call returned.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn io_error(&self, op: &'static str, path: &str, err: std::io::Error) -> Error {
        if err.kind() == ErrorKind::NotFound {
            Error::NotFound {
                store: self.root.display().to_string(),
                path: path.into(),
            }
        } else {
            Error::Io {
                store: self.root.display().to_string(),
                op,
                path: path.into(),
                cause: err.into(),
            }
        }
    }

    /// Runs blocking file-system work off the async runtime's worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        path: &str,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result.map_err(|err| self.io_error(op, path, err)),
            Err(join) => Err(Error::Io {
                store: self.root.display().to_string(),
                op,
                path: path.into(),
                cause: join.into(),
            }),
        }
    }

    pub async fn write_new(&self, path: &str, bytes: Bytes) -> Result<()> {
        let file = self.resolve(path);
        self.blocking("write", path, move || {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::fs::File::create(&file)?;
            out.write_all(&bytes)?;
            out.sync_all()
        })
        .await
    }

    pub async fn rename_over(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.resolve(from), self.resolve(to));
        self.blocking("rename", from, move || {
            std::fs::rename(&source, &target)?;
            sync_parent(&target)
        })
        .await
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let file = self.resolve(path);
        self.blocking("read", path, move || std::fs::read(file).map(Bytes::from))
            .await
    }

    /// The names of the files in `dir` (none if it does not exist).
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, false).await
    }

    /// The names of the files (or, with `dirs`, the directories) in `dir`;
    /// none if it does not exist.
    async fn entries(&self, dir: &str, dirs: bool) -> Result<Vec<String>> {
        let dir_path = self.resolve(dir);
        self.blocking("list", dir, move || {
            let entries = match std::fs::read_dir(&dir_path) {
                Ok(entries) => entries,
                Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(err) => return Err(err),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                if (dirs && kind.is_dir()) || (!dirs && kind.is_file()) {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            Ok(names)
        })
        .await
    }

    pub async fn delete(&self, path: &str) -> Result<bool> {
        let file = self.resolve(path);
        self.blocking("delete", path, move || match std::fs::remove_file(&file) {
            Ok(()) => sync_parent(&file).map(|()| true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        })
        .await
    }
}

impl LocalStore {
    /// `write_new`, but in a directory that must exist: it is never created.
    pub async fn write_in_dir(&self, path: &str, bytes: Bytes) -> Result<()> {
        let file = self.resolve(path);
        self.blocking("write", path, move || {
            let mut out = std::fs::File::create(&file)?;
            out.write_all(&bytes)?;
            out.sync_all()
        })
        .await
    }

    /// Renames `from` to `to`, failing with [`Error::Exists`] if `to` exists.
    pub async fn rename_new(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.resolve(from), self.resolve(to));
        let outcome = self
            .blocking("rename", from, move || {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &source,
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::RenameFlags::NOREPLACE,
                )
                .map_err(std::io::Error::from)?;
                sync_parent(&target)
            })
            .await;
        match outcome {
            Err(Error::Io { cause, .. })
                if cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|err| err.kind() == ErrorKind::AlreadyExists) =>
            {
                Err(Error::Exists {
                    store: self.root.display().to_string(),
                    path: to.into(),
                })
            }
            outcome => outcome,
        }
    }

    /// Renames `from` here to `to` in `target`, replacing it (same file system).
    pub async fn rename_to(&self, from: &str, target: &LocalStore, to: &str) -> Result<()> {
        let (source, destination) = (self.resolve(from), target.resolve(to));
        self.blocking("rename", from, move || {
            std::fs::rename(&source, &destination)?;
            sync_parent(&destination)
        })
        .await
    }

    pub async fn mkdir(&self, path: &str) -> Result<()> {
        let dir = self.resolve(path);
        self.blocking("mkdir", path, move || std::fs::create_dir_all(dir))
            .await
    }

    /// The names of the directories in `dir` (none if it does not exist).
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, true).await
    }

    /// When `path` was last modified.
    pub async fn modified(&self, path: &str) -> Result<std::time::SystemTime> {
        let file = self.resolve(path);
        self.blocking("stat", path, move || std::fs::metadata(&file)?.modified())
            .await
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        let file = self.resolve(path);
        self.blocking("stat", path, move || {
            match std::fs::symlink_metadata(&file) {
                Ok(_) => Ok(true),
                Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// Deletes `path` and everything below it.
    pub async fn delete_tree(&self, path: &str) -> Result<bool> {
        let dir = self.resolve(path);
        self.blocking("delete", path, move || {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}
