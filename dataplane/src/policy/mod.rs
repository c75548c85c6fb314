//! Per-port firewall (ACL) and QoS policers.
