//! An in-memory [`Backend`] for unit tests: same contract, no durability.

use super::{Backend, KeyValue, Op, StorageError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Key → (mod revision, value), and the current revision.
type State = (BTreeMap<String, (u64, Bytes)>, u64);

/// Ordered map in memory; `flush` is a no-op.
#[derive(Default)]
pub struct MemoryBackend {
    inner: RwLock<State>,
}

impl MemoryBackend {
    /// An empty backend at revision 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let g = self.inner.read().expect("memory backend lock");
        Ok(g.0.get(key).map(|(rev, v)| KeyValue {
            key: key.to_string(),
            mod_revision: *rev,
            value: v.clone(),
        }))
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        use std::ops::Bound;
        let g = self.inner.read().expect("memory backend lock");
        let lower = match start_after {
            Some(k) if k >= prefix => Bound::Excluded(k.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        Ok(g.0
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, (rev, v))| KeyValue {
                key: k.clone(),
                mod_revision: *rev,
                value: v.clone(),
            })
            .collect())
    }

    fn apply(&self, op: Op, revision: u64) -> Result<(), StorageError> {
        let mut g = self.inner.write().expect("memory backend lock");
        match op {
            Op::Put {
                key,
                mod_revision,
                value,
            } => {
                g.0.insert(key, (mod_revision, value));
            }
            Op::Delete { key } => {
                g.0.remove(&key);
            }
        }
        g.1 = revision;
        Ok(())
    }

    fn revision(&self) -> Result<u64, StorageError> {
        Ok(self.inner.read().expect("memory backend lock").1)
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
