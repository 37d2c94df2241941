//! HTTP-level tests of the API server, one test binary (each binary links
//! the whole server, so one keeps the build small).

mod api;
mod apply;
mod defaults;
mod openapi;
mod portforward;
mod tokens;
