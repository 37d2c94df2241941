//! apiserver-shim: a lightweight Kubernetes-compatible API server.
//!
//! One process serves the Kubernetes REST API over HTTPS from an embedded,
//! revisioned store, with the list/watch/resourceVersion semantics that
//! kubectl, client-go and kube-rs rely on. Layers, from the bottom:
//!
//! * [`store`]: the storage contract and its sled-backed implementation;
//! * [`registry`]: every served kind as data;
//! * [`rest`] and [`watch`]: one generic REST layer over the registry;
//! * [`filters`]: the stages a request passes before it is served, one
//!   folder each, in order: authentication, audit, impersonation, fair
//!   limits, authorization (RBAC);
//! * [`server`]: TLS, authentication, routing, bootstrap.
//!
//! Start one in-process with [`Server::start`]; the `vkube apiserver`
//! command wraps the same call.
#![warn(missing_docs)]

pub mod admission_policy;
pub mod alloc;
pub mod bootstrap;
pub mod bootstrap_policy;
pub mod certificates;
pub mod channel;
pub mod connect;
pub mod conversion;
pub mod crd;
pub mod delegated;
pub mod discovery;
pub mod dra;
pub mod error;
pub mod fieldmanager;
pub mod filters;
pub mod flowcontrol;
pub mod health;
pub mod local_node;
mod loopback;
pub mod meta;
pub mod metrics;
pub mod metrics_api;
pub mod openapi;
pub mod pki;
pub mod portforward;
pub mod protobuf;
pub mod registry;
pub mod request;
pub mod rest;
pub mod review;
pub mod sa_token;
pub mod server;
pub mod serviceaccount;
pub mod spdy;
pub mod store;
pub mod table;
pub mod typed;
pub mod warning;
pub mod watch;
pub mod webhook;

pub use filters::authorization::AuthorizationMode;
pub use server::{Server, ServerConfig};
