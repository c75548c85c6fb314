//! The bodies of xvs's fuzz targets, as plain functions of the input bytes.
//!
//! cargo-fuzz builds `fuzz/fuzz_targets/*`, one thin `fuzz_target!` wrapper
//! per function here; the functions themselves need neither nightly nor
//! libFuzzer, so the ordinary test suite replays the committed corpus and
//! every saved crash through them (`tests/replay.rs`). A target panics on
//! a bug; any input that returns is a pass. See `fuzz/README.md`.

pub mod common;
pub mod seeds;

mod agent_registry;
mod ctl_request;
mod invalidation;
pub mod neigh_snoop;
mod pipeline;
mod state_file;
mod tunnel_pop;
mod vhost_queue;
mod wire_parse;

pub use agent_registry::agent_registry;
pub use ctl_request::ctl_request;
pub use invalidation::invalidation;
pub use neigh_snoop::neigh_snoop;
pub use pipeline::pipeline;
pub use state_file::state_file;
pub use tunnel_pop::tunnel_pop;
pub use vhost_queue::vhost_queue;
pub use wire_parse::wire_parse;

/// A target: panics on a bug, returns on any other input.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name (the directory of its corpus and
/// regressions), for the replay test and the seed generator; a target
/// missing here would never be replayed.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_parse", wire_parse),
    ("tunnel_pop", tunnel_pop),
    ("pipeline", pipeline),
    ("ctl_request", ctl_request),
    ("invalidation", invalidation),
    ("neigh_snoop", neigh_snoop),
    ("agent_registry", agent_registry),
    ("state_file", state_file),
    ("vhost_queue", vhost_queue),
];
