//! xvsd: the switch daemon. [`worker`] moves frames between AF_XDP
//! sockets through the dataplane pipeline; [`daemon`] builds the sockets,
//! XDP programs and workers from a config and runs the control thread
//! (kernel routes and neighbors, snooped replies, learning, aging). The
//! binary (`src/bin/xvsd.rs`) is the command line around [`daemon`].

pub mod daemon;
pub mod state;
pub mod worker;

pub use worker::{PollMode, Worker, WorkerCounters, WorkerPort, WorkerReport};
