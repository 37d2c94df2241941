//! vkube syncer: translates a tenant's objects from the virtual API server
//! into one host namespace and reflects their status back.
//!
//! This crate's modules here are the pure core (no I/O, no async, no
//! client), one per concern; docs/syncer.md states the contract they
//! implement:
//! * [`names`]: host names (injective `NAME-x-NS-x-VC`), ownership markers,
//!   [`names::is_managed`];
//! * [`pod`]: virtual Pod → host Pod; [`security`]: Pod Security Standards;
//! * [`configmap`], [`secret`], [`service`], [`endpoints`]: virtual → host
//!   translations and their `needs_update` comparisons ([`error`] holds
//!   their shared error type); [`service`] also reflects host allocations
//!   back and computes service environment variables;
//! * [`event`]: host Events → virtual Events and the syncer's own Warnings;
//! * [`node`]: the virtual Nodes a tenant sees.
#![warn(missing_docs)]

pub mod configmap;
pub mod endpoints;
pub mod error;
pub mod event;
pub mod names;
pub mod node;
pub mod pod;
pub mod secret;
pub mod security;
pub mod service;
