//! Tables read on the per-packet path: FDB, neighbor cache, routes, flow classifier.

pub mod classifier;
pub mod flow;
