//! xvsd: the switch daemon. [`daemon`] builds the sockets, XDP programs
//! and workers (`xvs-io`'s, which move frames between AF_XDP sockets
//! through the dataplane pipeline) from a config and runs the control
//! thread (kernel routes and neighbors, snooped replies, learning,
//! aging), reading the kernel's routes and neighbors through [`netlink`].
//! The binary (`src/bin/xvsd.rs`) is the command line around [`daemon`].

pub mod daemon;
pub mod fastpath;
pub mod metrics;
pub mod netlink;
pub mod state;
