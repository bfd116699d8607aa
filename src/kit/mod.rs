//! The kit: what measures and exercises the sidecar without being part of it.
//!
//! The bench, the soak, the demo and the tests share these: an app host that
//! dials a gateway like an SDK app would (`apphost`), a gateway hosted in
//! process with its CPU time counted apart (`hosted`, `procstat`), a
//! stateful counter app for the runtime (`counter`), a load
//! generator (`load`), the chaos workload (`chaos`), and the plain tonic echo
//! server the bench compares against (`baseline`). Nothing under `src/`'s
//! other modules depends on them.

pub mod apphost;
pub mod baseline;
pub mod chaos;
pub mod counter;
pub mod hosted;
pub mod http_load;
pub mod load;
pub mod procstat;
