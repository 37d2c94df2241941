//! Integration tests of the `vkube` binary, one test binary (each binary
//! links the whole server, so one keeps the build small).

mod cli_tenant;
mod crash;
mod metrics;
mod server;
// Shared with the benches, which include it by path too.
#[path = "../support/mod.rs"]
mod support;
mod syncer;
mod up;
