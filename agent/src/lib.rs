//! xvs-agent: distributed host discovery for xvs on etcd (the seed VTEP
//! agent / flannel pattern). Each host registers its VTEP and virts under
//! a lease; every host watches the others and keeps its own xvsd's tunnel
//! flood lists and static FDB entries in step, through xvsd's control
//! socket only (no etcd, gRPC or async runtime inside xvsd).
//!
//! `config` is the agent's file, `registry` what hosts publish, `state`
//! the pure registry -> desired entries -> diff logic, `xvsd` the
//! translation into one transaction, `agent` the event loop.

pub mod agent;
pub mod config;
pub mod registry;
pub mod state;
pub mod xvsd;
