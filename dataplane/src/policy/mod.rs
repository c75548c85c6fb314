//! Per-port firewall (ACL) and QoS policers.

pub mod firewall;
pub mod port_security;
pub mod qos;
