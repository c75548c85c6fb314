//! xvs I/O: frames in and out of AF_XDP sockets, and the worker loop
//! that runs them through the dataplane pipeline.
//!
//! [`xsk`] is the UMEM and its sockets: one UMEM per worker shared by
//! the sockets of every (interface, queue) it serves, with the start of
//! a frame anywhere in its chunk and chunk ownership checked on every
//! access. [`worker`] is the poll loop over one such set: receive a
//! batch, lend its chunks to `process_batch`, transmit the same
//! descriptors out of the chosen ports, recycle the rest. This crate is
//! the only place where I/O and the pipeline meet: `xvs-dataplane`
//! decides, `xvs-bpf` loads the XDP programs that redirect frames into
//! these sockets, and xvsd sets everything up and runs the control
//! thread.

pub mod handoff;
pub mod worker;
pub mod xsk;

pub use worker::{PollMode, Worker, WorkerCounters, WorkerPort, WorkerReport};
