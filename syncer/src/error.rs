//! The error type shared by the per-kind translations ([`crate::configmap`],
//! [`crate::secret`], [`crate::service`], [`crate::endpoints`]).

use crate::names::NamesError;

/// Why a virtual object was not translated into a host object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The virtual object lacks name, namespace or uid.
    #[error("reading the virtual object's identity: {0}")]
    Identity(#[from] NamesError),
    /// The object asks for something the host must not grant (the message
    /// says what and why; it is meant for the tenant's Warning Event).
    #[error("refused: {0}")]
    Forbidden(String),
}
