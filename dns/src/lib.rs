//! vkube's tenant DNS: the records of a virtual cluster's Services and
//! EndpointSlices ([`view`], pure), kept current by watching the virtual
//! API server ([`watch`]), served over UDP and TCP with every other name
//! forwarded to the resolver the process itself uses ([`server`]).
#![warn(missing_docs)]

pub mod server;
pub mod view;
pub mod watch;

/// hickory's DNS message types, for clients and tests of the server.
pub use hickory_server::proto;
pub use server::{DnsServer, resolver_for, serve, system_resolver};
pub use view::DnsView;
