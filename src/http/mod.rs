//! daprd's HTTP actor API (facts http-api-facts.md): the second front door,
//! for the SDKs' `ActorProxy`, curl and whatever calls actors the
//! documented HTTP way.
//!
//! It shares everything but the wire with the gRPC front door: the same
//! [`ActorApi`] (names, turns, state, timers, reminders), the same token
//! check and the same limits. What is here is only HTTP: the routes and
//! their handlers (`routes`), how paths are read (`path`), headers and
//! metadata (`headers`), Go's JSON (`json`), the error catalogue (`error`),
//! the token and path clean-up in front of the router (`door`), and the
//! connections (`server`). docs/protocol.md lists the routes, statuses and
//! where we deviate from daprd.

pub mod door;
pub mod error;
pub mod headers;
pub mod json;
pub mod path;
pub mod routes;
pub mod server;

use std::time::Duration;

pub use door::FrontDoor;
pub use server::HttpServer;

/// Dapr's usual HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 3500;

/// How the HTTP front door serves.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Largest request body read, in bytes; a larger one is refused with
    /// 400, as daprd (`--max-body-size`, default 4 MiB).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers, and how long
    /// a kept-alive HTTP/1.1 connection may sit idle (daprd: 10 s).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// Concurrent requests on one h2c connection.
    pub max_calls_per_connection: u32,
    /// How long a new connection may take to send its first bytes.
    pub handshake_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: crate::service::DEFAULT_MAX_MESSAGE_BYTES,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            max_calls_per_connection: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
