//! End-to-end tests, one test binary: real `kubectl`, `helm` and kube-rs
//! against real vkube servers. One binary rather than one per file keeps
//! the build small (each binary links the whole server); nextest still runs
//! every test in its own process.

mod admission_policies;
mod audit;
mod authorization;
mod certificates;
mod chart;
mod controllers;
mod crds;
mod crds_real;
mod dns;
mod examples;
mod helm;
mod kubectl;
mod limits;
mod namespace_controllers;
mod networking;
mod oidc;
mod pod_connect;
mod resources;
mod scenario;
mod scheduling;
mod storage;
mod syncer;
mod syncer_services;
mod tokens;
mod top;
mod typed_create;
mod webhooks;
mod workloads;
