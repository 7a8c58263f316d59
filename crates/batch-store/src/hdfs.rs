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

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct HdfsStore {
    url: String,
    base: String,
    client: std::sync::Arc<Client>,
    call_timeout: Duration,
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
            base: base.to_string(),
            client: client.into(),
            call_timeout: crate::DEFAULT_CALL_TIMEOUT,
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
        let full = self.resolve(path);
        let options = WriteOptions::default().overwrite(true).create_parent(true);
        let started = std::time::Instant::now();
        let mut writer = self
            .call("create", path, self.client.create(&full, options))
            .await?;
        let created = started.elapsed();
        self.call("write", path, writer.write_bytes(bytes)).await?;
        let written = started.elapsed();
        self.call("close", path, writer.close()).await?;
        tracing::debug!(
            path,
            create = ?created,
            write = ?(written - created),
            close = ?(started.elapsed() - written),
            "file written"
        );
        Ok(())
    }

    pub async fn rename_over(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.resolve(from), self.resolve(to));
        let started = std::time::Instant::now();
        self.call("rename", from, self.client.rename(&source, &target, true))
            .await?;
        tracing::debug!(from, took = ?started.elapsed(), "renamed");
        Ok(())
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

    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
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
            .filter(|status| !status.isdir)
            .filter_map(|status| status.path.rsplit('/').next().map(str::to_string))
            .collect())
    }

    pub async fn delete(&self, path: &str) -> Result<bool> {
        let full = self.resolve(path);
        self.call("delete", path, self.client.delete(&full, false))
            .await
    }
}
