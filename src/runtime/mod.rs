//! The actor runtime (SPEC §8): what daprd, placement, the scheduler and the
//! state store do for an SDK app's actors, behind the relay.
//!
//! Being built; see docs/architecture.md.

pub mod clock;
pub mod data;
pub mod schedule;
pub mod state;
