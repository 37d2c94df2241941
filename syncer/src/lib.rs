//! vkube syncer: translates a tenant's objects from the virtual API server
//! into one host namespace and reflects their status back (issue 4).
//!
//! Pure core (no I/O): [`names`] (host names and ownership markers) and
//! [`pod`] (virtual Pod → host Pod, status reflection, mutable-field
//! updates, token injection). I/O: [`engine`] (configuration, shared
//! context, [`engine::Syncer`]), [`controller`] (one module per synced
//! kind), [`queue`] (the work queue) and [`metrics`].
#![warn(missing_docs)]

pub mod controller;
pub mod engine;
pub mod metrics;
pub mod names;
pub mod pod;
pub mod queue;

pub use engine::{Context, Syncer, SyncerConfig, resolve_owner};
pub use metrics::Metrics;
