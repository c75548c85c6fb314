//! The xvs control plane's shared crate: what xvsd and xvsctl agree on.
//!
//! - [`protocol`]: the JSON-RPC schema (envelopes, error codes, typed
//!   methods, result rows: the `--format json` contract);
//! - [`command`]: the config-changing commands and the transaction that
//!   applies them to a [`xvs_config::Config`];
//! - [`server`]: the Unix socket server xvsd embeds (framing, limits,
//!   peer credentials), handing typed calls to the daemon over a channel;
//! - [`client`]: the client xvsctl uses;
//! - [`view`]: result rows that can be built from the config alone;
//! - [`model`]: the declarative network model (validate, compile, diff);
//! - [`units`]: policer rates and sizes in human units;
//! - [`cli`]: xvsctl's command line (also what completions and the man
//!   page are generated from).

pub mod cli;
pub mod client;
pub mod command;
pub mod model;
pub mod protocol;
pub mod server;
pub mod units;
pub mod view;
