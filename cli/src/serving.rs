//! Flags of the request chain shared by `vkube apiserver` and `vkube
//! server`, named as kube-apiserver's.

use apiserver_shim::filters::limits::LimitsConfig;

/// Limits on requests served at once (kube-apiserver's flags of the same
/// names).
#[derive(clap::Args, Debug, Clone)]
pub struct ServingArgs {
    /// Read-only requests (get, list) served at once; more wait in a queue
    /// fair between users, and get 429 when their user's queue is full or
    /// their wait runs out. Watches, logs, exec and port-forward are not
    /// counted, nor system:masters. 0: no limit.
    #[arg(long, default_value_t = 400, env = "VKUBE_MAX_REQUESTS_INFLIGHT")]
    pub max_requests_inflight: usize,
    /// Mutating requests served at once, as --max-requests-inflight.
    #[arg(
        long,
        default_value_t = 200,
        env = "VKUBE_MAX_MUTATING_REQUESTS_INFLIGHT"
    )]
    pub max_mutating_requests_inflight: usize,
}

impl ServingArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            ..LimitsConfig::default()
        }
    }
}
