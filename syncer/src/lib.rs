//! vkube syncer: translates a tenant's objects from the virtual API server
//! into one host namespace and reflects their status back.
//!
//! Today only the pure core exists: [`names`] (host names and ownership
//! markers) and [`pod`] (virtual Pod → host Pod). No I/O, no async, no
//! client.
#![warn(missing_docs)]

pub mod names;
pub mod pod;
