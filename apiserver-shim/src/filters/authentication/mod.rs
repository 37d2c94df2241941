//! Authentication: who a request comes from. Besides client certificates
//! and the server's own tokens (see [`crate::server`]), bearer tokens from
//! OIDC identity providers are verified by the JWT authenticators of a
//! structured authentication configuration (`--authentication-config`,
//! KEP-3331).

pub mod claims;
pub mod config;
pub mod jwks;
