//! xvs dataplane: everything a worker does to a batch of frames, with no
//! socket or syscall in it, so it runs the same under AF_XDP, in unit tests
//! and in benchmarks; and the control plane's state machine ([`control`]),
//! which is handed what the kernel reports (routes, neighbors: read over
//! rtnetlink by xvsd) as data.
//!
//! One read of the filesystem remains, on the control thread, never on a
//! worker: [`control::ifindex_of`] reads an interface's index from sysfs
//! when a configured route names its device. Nothing else here opens a
//! file or a socket or makes a syscall.
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
