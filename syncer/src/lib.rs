//! vkube syncer: translates a tenant's objects from the virtual API server
//! into one host namespace and reflects their status back.
//!
//! The pure core (no I/O, no async, no client), one module per concern;
//! docs/syncer.md states the contract they implement:
//! * [`names`]: host names (injective `NAME-x-NS-x-VC`), ownership markers,
//!   [`names::is_managed`];
//! * [`pod`]: virtual Pod → host Pod, status reflection, mutable-field
//!   updates, token injection; [`security`]: Pod Security Standards;
//! * [`configmap`], [`secret`], [`service`], [`endpoints`]: virtual → host
//!   translations and their `needs_update` comparisons ([`error`] holds
//!   their shared error type); [`service`] also reflects host allocations
//!   back and computes service environment variables;
//! * [`persistentvolumeclaim`] (claims, their status and virtual
//!   PersistentVolumes), [`storageclass`] (the host's StorageClasses and
//!   CSIDrivers shown read-only), [`ingress`] (Ingresses and IngressClasses),
//!   [`networkpolicy`], [`poddisruptionbudget`] (budgets and host
//!   evictions), [`priorityclass`]: the kinds real applications declare
//!   beyond pods and services;
//! * [`event`]: host Events → virtual Events and the syncer's own Warnings;
//! * [`node`]: the virtual Nodes a tenant sees;
//! * [`pause`]: the record that lets a paused cluster's pods survive resume.
//!
//! The I/O engine (docs/syncer-engine.md): [`engine`] (configuration,
//! shared context, [`engine::Syncer`]), [`controller`] (one module per
//! synced kind), [`queue`] (the work queue) and [`metrics`].
#![warn(missing_docs)]

pub mod cluster_scoped;
pub mod configmap;
pub mod connect;
pub mod controller;
pub mod endpoints;
pub mod engine;
pub mod error;
pub mod event;
pub mod ingress;
pub mod metrics;
pub mod names;
pub mod networkpolicy;
pub mod node;
pub mod pause;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod poddisruptionbudget;
pub mod priorityclass;
pub mod queue;
pub mod resource_metrics;
pub mod secret;
pub mod security;
pub mod service;
pub mod storageclass;
pub mod summary;

pub use engine::{Context, Syncer, SyncerConfig, resolve_owner};
pub use metrics::Metrics;
