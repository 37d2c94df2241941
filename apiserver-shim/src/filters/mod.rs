//! The stages a request passes before the REST layer (with its admission,
//! `rest/admission.rs`) serves it, in kube-apiserver's order
//! (k8s.io/apiserver pkg/server/config.go, `DefaultBuildHandlerChain`),
//! composed in [`crate::server`]'s dispatch:
//!
//! 1. [`authentication`]: who the request comes from;
//! 2. [`audit`]: what is recorded of it;
//! 3. [`impersonation`]: whom it acts as;
//! 4. [`limits`]: whether it is served now, waits, or gets `429`;
//! 5. [`authorization`]: whether RBAC allows it.

pub mod audit;
pub mod authentication;
pub mod authorization;
pub mod impersonation;
pub mod limits;
