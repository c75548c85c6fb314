//! Tables read on the per-packet path: FDB, neighbor cache, routes, flow classifier.

pub mod classifier;
pub mod fdb;
pub mod flow;
pub mod neigh;
pub mod route;
