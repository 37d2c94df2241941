//! vkube syncer: translates a tenant's objects from the virtual API server
//! into one host namespace and reflects their status back.
//!
//! Not implemented yet; this crate reserves its place in the workspace.
#![warn(missing_docs)]
