//! `callbackstream`: the sidecar side of Dapr's app-initiated actor callback
//! stream (`SubscribeActorEventsAlpha1`), on actix actors and tonic.
//!
//! - [`manager::ManagerActor`] keeps the registry of live app streams and
//!   routes each request to one of them;
//! - [`connection::ConnectionActor`] owns one stream's outbox and the requests
//!   waiting for that app's replies;
//! - [`transport::Transport`] is the typed API (invoke / reminder / timer /
//!   deactivate) on top of the raw `Send`.
//!
//! See docs/architecture.md for how a request travels through them.

pub mod clip;
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod gateway;
pub mod kit;
pub mod log_throttle;
pub mod manager;
pub mod metrics;
pub mod pending;
pub mod proto;
pub mod runtime;
pub mod server;
pub mod service;
pub mod store;
pub mod threads;
pub mod transport;

pub use config::RegistrationConfig;
pub use connection::{ConnectionId, ConnectionOptions, PendingReply, Reply};
pub use error::Error;
pub use manager::ManagerActor;
pub use transport::Transport;
