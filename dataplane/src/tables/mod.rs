//! Tables read on the per-packet path: FDB, neighbor cache, routes, flow
//! classifier, overlay addresses.

pub mod addr;
pub mod classifier;
pub mod fdb;
pub mod flow;
pub mod neigh;
pub mod route;
