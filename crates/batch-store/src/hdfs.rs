//! A store on HDFS through the native client. HDFS's rename does not replace
//! an existing file unless asked to, so every rename here passes `overwrite`.
//! A file is durable once `close` returns (the DataNodes have acknowledged
//! every block), but readers may see it shorter until the DataNodes have
//! reported its last block: see `Store::ensure_whole`.
//!
//! Every call to the NameNode or a DataNode is bounded by a timeout: the
//! client waits for an answer without limit of its own, so a NameNode that
//! stops answering (a hung process, a cut link that drops packets rather than
//! refusing them) would otherwise hold a consumer in one call forever. A call
//! that times out is an error like any other; callers retry it.
//!
//! A batch file is one block of its own size, and after a DataNode broke a
//! write, files are written with one replica fewer for a while and then given
//! their replication back: see `block_size_for` and `FEWER_REPLICAS_FOR`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};

use crate::{Error, Result};

/// HDFS's smallest block size by default (`dfs.namenode.fs-limits.min-block-size`).
const MIN_BLOCK_SIZE: u64 = 1 << 20;

/// The block size a batch file is written with: its length rounded up to
/// whole MiB, so that the file is one block and no bigger than it needs.
///
/// Why not the cluster's 128 MiB: the NameNode counts every block it has
/// handed out and not yet heard of from a DataNode as that block size taken
/// on each of its DataNodes, and a block whose pipeline broke (a DataNode
/// killed) stays counted for 10 to 20 minutes. With 128 MiB blocks, a few
/// hundred broken small uploads made every DataNode of a disk with 47 GB
/// free look full, and no client could write at all; at the batch's own
/// size they cost what they hold (docs/faults.md).
fn block_size_for(len: u64) -> u64 {
    len.div_ceil(MIN_BLOCK_SIZE).max(1) * MIN_BLOCK_SIZE
}

/// How long after a DataNode broke a write the writes ask for one replica
/// fewer. hdfs-native, unlike the Java client, does not ask the NameNode for
/// a new block without a DataNode it could not reach, and the NameNode keeps
/// offering a dead DataNode (first, when it runs on the writer's host) until
/// it declares it dead, 90 s on the course's settings. With replication 3
/// and three DataNodes every block would include it; one replica fewer lets
/// the NameNode leave it out once it is stale (10 s on the course's
/// settings). The file gets its replication back right after it is closed,
/// and the NameNode copies the block once it has a DataNode for it.
const FEWER_REPLICAS_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Degraded {
    /// The replication the files should have.
    wanted: u32,
    until: Instant,
}

#[derive(Debug, Clone)]
pub struct HdfsStore {
    url: String,
    /// `hdfs://host:port`: the NameNode.
    namenode: String,
    base: String,
    client: Arc<Client>,
    call_timeout: Duration,
    degraded: Arc<Mutex<Option<Degraded>>>,
}

impl HdfsStore {
    /// `hdfs://host:port[/base]`: paths are resolved below `base`.
    pub fn open(location: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::Location {
            location: location.into(),
            reason: reason.into(),
        };
        let rest = location
            .strip_prefix("hdfs://")
            .ok_or_else(|| invalid("expected hdfs://host:port"))?;
        let (authority, base) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let url = format!("hdfs://{authority}");
        let client = ClientBuilder::new()
            .with_url(url.as_str())
            .build()
            .map_err(|err| invalid(&err.to_string()))?;
        Ok(Self {
            url: location.trim_end_matches('/').to_string(),
            namenode: url,
            base: base.to_string(),
            client: client.into(),
            call_timeout: crate::DEFAULT_CALL_TIMEOUT,
            degraded: Arc::default(),
        })
    }

    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Runs one client call, bounded by the call timeout.
    async fn call<T>(
        &self,
        op: &'static str,
        path: &str,
        call: impl Future<Output = hdfs_native::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result.map_err(|err| self.error(op, path, err)),
            Err(_) => Err(Error::Io {
                store: self.url.clone(),
                op,
                path: path.into(),
                cause: format!("no answer within {:?}", self.call_timeout).into(),
            }),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn resolve(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    fn error(&self, op: &'static str, path: &str, err: HdfsError) -> Error {
        let not_found = match &err {
            HdfsError::FileNotFound(_) => true,
            HdfsError::RPCError(class, _) => class.ends_with("FileNotFoundException"),
            _ => false,
        };
        if not_found {
            Error::NotFound {
                store: self.url.clone(),
                path: path.into(),
            }
        } else {
            Error::Io {
                store: self.url.clone(),
                op,
                path: path.into(),
                cause: err.into(),
            }
        }
    }

    pub async fn write_new(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.write(path, bytes, true).await
    }

    /// `write_new`, but in a directory that must exist: it is never created.
    pub async fn write_in_dir(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.write(path, bytes, false).await
    }

    async fn write(&self, path: &str, bytes: Bytes, create_parent: bool) -> Result<()> {
        let full = self.resolve(path);
        let mut options = WriteOptions::default()
            .overwrite(true)
            .create_parent(create_parent);
        let wanted = self.fewer_replicas();
        if let Some(wanted) = wanted {
            options = options.replication(wanted - 1);
        }
        let started = Instant::now();
        let sized = options
            .clone()
            .block_size(block_size_for(bytes.len() as u64));
        let mut writer = match self
            .call("create", path, self.client.create(&full, sized))
            .await
        {
            // A NameNode whose minimum block size was raised: its default.
            Err(err) if err.to_string().contains("less than configured minimum") => {
                self.call("create", path, self.client.create(&full, options))
                    .await?
            }
            outcome => outcome?,
        };
        let created = started.elapsed();
        let sent = async {
            self.call("write", path, writer.write_bytes(bytes)).await?;
            let written = started.elapsed();
            self.call("close", path, writer.close()).await?;
            Ok(written)
        }
        .await;
        let written = match sent {
            Ok(written) => written,
            Err(err) => {
                self.pipeline_failed(path, &full).await;
                return Err(err);
            }
        };
        if let Some(wanted) = wanted {
            // The NameNode copies the block to another DataNode once it can.
            self.call(
                "set the replication of",
                path,
                self.client.set_replication(&full, wanted),
            )
            .await?;
        }
        tracing::debug!(
            path,
            create = ?created,
            write = ?(written - created),
            close = ?(started.elapsed() - written),
            "file written"
        );
        Ok(())
    }

    /// The replication to restore after writing with one replica fewer, if
    /// a DataNode broke a write less than [`FEWER_REPLICAS_FOR`] ago.
    fn fewer_replicas(&self) -> Option<u32> {
        let degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        degraded
            .filter(|d| d.until > Instant::now())
            .map(|d| d.wanted)
    }

    /// A write broke after the NameNode created the file, in the DataNodes'
    /// pipeline: writes ask for one replica fewer for a while.
    async fn pipeline_failed(&self, path: &str, full: &str) {
        let already = self.fewer_replicas();
        let wanted = match already {
            Some(wanted) => wanted,
            None => match self
                .call("stat", path, self.client.get_file_info(full))
                .await
            {
                Ok(status) => status.replication.unwrap_or(0),
                Err(_) => return,
            },
        };
        if wanted < 2 {
            return;
        }
        if already.is_none() {
            tracing::warn!(
                replication = wanted - 1,
                then = wanted,
                "a DataNode broke a write; writing with one replica fewer, then asking for \
                 the rest, until writes go through again (the NameNode keeps offering a \
                 DataNode it has not yet declared dead)"
            );
        }
        *self.degraded.lock().unwrap_or_else(|p| p.into_inner()) = Some(Degraded {
            wanted,
            until: Instant::now() + FEWER_REPLICAS_FOR,
        });
    }

    pub async fn rename_over(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.resolve(from), self.resolve(to));
        let started = Instant::now();
        self.call("rename", from, self.client.rename(&source, &target, true))
            .await?;
        tracing::debug!(from, took = ?started.elapsed(), "renamed");
        Ok(())
    }

    /// Renames `from` to `to`, failing with [`Error::Exists`] if `to` exists.
    pub async fn rename_new(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.resolve(from), self.resolve(to));
        match self
            .call("rename", from, self.client.rename(&source, &target, false))
            .await
        {
            Err(Error::Io { cause, .. })
                if cause.to_string().contains("FileAlreadyExistsException") =>
            {
                Err(Error::Exists {
                    store: self.url.clone(),
                    path: to.into(),
                })
            }
            outcome => outcome,
        }
    }

    /// Renames `from` here to `to` in `target`, replacing it: both must be
    /// on the same NameNode.
    pub async fn rename_to(&self, from: &str, target: &HdfsStore, to: &str) -> Result<()> {
        if !self.same_namenode(target) {
            return Err(Error::Location {
                location: target.url.clone(),
                reason: format!("not on the same NameNode as {}", self.url),
            });
        }
        let (source, destination) = (self.resolve(from), target.resolve(to));
        self.call(
            "rename",
            from,
            self.client.rename(&source, &destination, true),
        )
        .await
    }

    pub fn same_namenode(&self, other: &HdfsStore) -> bool {
        self.namenode == other.namenode
    }

    pub async fn mkdir(&self, path: &str) -> Result<()> {
        let full = self.resolve(path);
        self.call("mkdir", path, self.client.mkdirs(&full, 0o755, true))
            .await
    }

    /// The names of the directories in `dir` (none if it does not exist).
    pub async fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, true).await
    }

    /// When `path` was last modified.
    pub async fn modified(&self, path: &str) -> Result<std::time::SystemTime> {
        let full = self.resolve(path);
        let status = self
            .call("stat", path, self.client.get_file_info(&full))
            .await?;
        Ok(std::time::UNIX_EPOCH + Duration::from_millis(status.modification_time))
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        let full = self.resolve(path);
        match self
            .call("stat", path, self.client.get_file_info(&full))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes `path` and everything below it.
    pub async fn delete_tree(&self, path: &str) -> Result<bool> {
        let full = self.resolve(path);
        self.call("delete", path, self.client.delete(&full, true))
            .await
    }

    pub async fn ensure_whole(&self, path: &str, len: u64) -> Result<()> {
        // The length a reader gets (from the block locations), not the
        // file's status: the status already counts a committed block.
        let full = self.resolve(path);
        let reader = self.call("open", path, self.client.read(&full)).await?;
        let visible = reader.file_length() as u64;
        if visible == len {
            Ok(())
        } else {
            Err(Error::NotWhole {
                store: self.url.clone(),
                path: path.into(),
                visible,
                expected: len,
            })
        }
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let full = self.resolve(path);
        let reader = self.call("open", path, self.client.read(&full)).await?;
        self.call("read", path, reader.read_range(0, reader.file_length()))
            .await
    }

    /// The names of the files in `dir` (none if it does not exist).
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, false).await
    }

    /// The names of the files (or, with `dirs`, the directories) in `dir`;
    /// none if it does not exist.
    async fn entries(&self, dir: &str, dirs: bool) -> Result<Vec<String>> {
        let full = self.resolve(dir);
        let statuses = match self
            .call("list", dir, self.client.list_status(&full, false))
            .await
        {
            Ok(statuses) => statuses,
            Err(err) if err.is_not_found() => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        Ok(statuses
            .into_iter()
            .filter(|status| status.isdir == dirs)
            .filter_map(|status| status.path.rsplit('/').next().map(str::to_string))
            .collect())
    }

    pub async fn delete(&self, path: &str) -> Result<bool> {
        let full = self.resolve(path);
        self.call("delete", path, self.client.delete(&full, false))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{block_size_for, MIN_BLOCK_SIZE};

    #[test]
    fn a_batch_file_is_one_block_of_whole_mebibytes() {
        assert_eq!(block_size_for(0), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(15_000), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(MIN_BLOCK_SIZE), MIN_BLOCK_SIZE);
        assert_eq!(block_size_for(MIN_BLOCK_SIZE + 1), 2 * MIN_BLOCK_SIZE);
        assert_eq!(
            block_size_for(300 * MIN_BLOCK_SIZE - 7),
            300 * MIN_BLOCK_SIZE
        );
    }
}
