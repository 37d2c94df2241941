//! The stages a request passes before the REST layer serves it, in
//! kube-apiserver's order (k8s.io/apiserver pkg/server/config.go,
//! `DefaultBuildHandlerChain`), composed in [`crate::server`]'s dispatch.

pub mod audit;
pub mod authentication;
pub mod limits;
