//! The embedded durable [`Backend`]: one sled tree.
//!
//! Layout: object keys (all start with `/`) map to `mod_revision` (8 bytes,
//! big-endian) followed by the value bytes; the reserved key `\0revision`
//! holds the current revision. Each write is one sled batch touching both, so
//! a crash leaves either the whole write or none of it; durability comes from
//! the explicit `flush` the group-commit thread performs before a write is
//! acknowledged.

use super::{Backend, KeyValue, Op, StorageError};
use bytes::Bytes;
use std::path::Path;

const REVISION_KEY: &[u8] = b"\0revision";

/// sled-backed storage.
pub struct SledBackend {
    db: sled::Db,
    tree: sled::Tree,
}

fn backend_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

fn decode(key: &[u8], raw: &[u8]) -> Result<KeyValue, StorageError> {
    if raw.len() < 8 {
        return Err(StorageError::Backend(format!(
            "corrupt entry at {}",
            String::from_utf8_lossy(key)
        )));
    }
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&raw[..8]);
    Ok(KeyValue {
        key: String::from_utf8_lossy(key).into_owned(),
        mod_revision: u64::from_be_bytes(rev),
        value: Bytes::copy_from_slice(&raw[8..]),
    })
}

impl SledBackend {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page
    /// cache, which dominates the server's idle memory.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability is ours: the group-commit thread flushes before acks.
            .flush_every_ms(None)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(backend_err)?;
        let tree = db.open_tree("objects").map_err(backend_err)?;
        Ok(Self { db, tree })
    }
}

impl Backend for SledBackend {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        match self.tree.get(key.as_bytes()).map_err(backend_err)? {
            Some(raw) => decode(key.as_bytes(), &raw).map(Some),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut out = Vec::new();
        let iter = match start_after {
            Some(k) if k >= prefix => {
                let mut lower = k.as_bytes().to_vec();
                lower.push(0);
                self.tree.range(lower..)
            }
            _ => self.tree.range(prefix.as_bytes()..),
        };
        for item in iter {
            let (k, v) = item.map_err(backend_err)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push(decode(&k, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn apply(&self, op: Op, revision: u64) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        match op {
            Op::Put {
                key,
                mod_revision,
                value,
            } => {
                let mut raw = Vec::with_capacity(8 + value.len());
                raw.extend_from_slice(&mod_revision.to_be_bytes());
                raw.extend_from_slice(&value);
                batch.insert(key.as_bytes(), raw);
            }
            Op::Delete { key } => batch.remove(key.as_bytes()),
        }
        batch.insert(REVISION_KEY, &revision.to_be_bytes());
        self.tree.apply_batch(batch).map_err(backend_err)
    }

    fn revision(&self) -> Result<u64, StorageError> {
        match self.tree.get(REVISION_KEY).map_err(backend_err)? {
            Some(raw) if raw.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw);
                Ok(u64::from_be_bytes(b))
            }
            Some(_) => Err(StorageError::Backend("corrupt revision key".into())),
            None => Ok(0),
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(backend_err)
    }
}
