//! xvs dataplane: everything a worker does to a batch of frames, with no
//! socket or syscall in it, so it runs the same under AF_XDP, in unit tests
//! and in benchmarks.
//!
//! Layers, bottom up: [`wire`] (typed views over bytes), [`tunnel`]
//! (header templates, push, pop), [`tables`] (FDB, neighbors, routes, flows),
//! [`policy`] (firewall, QoS), [`pipeline`] (the per-batch function) and
//! [`snapshot`] (the immutable tables a worker reads, swapped atomically).

pub mod control;
pub mod events;
pub mod frame;
pub mod pipeline;
pub mod policy;
pub mod snapshot;
pub mod stats;
pub mod tables;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tunnel;
pub mod wire;
