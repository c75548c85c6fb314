//! Desired configuration: bridges, ports, tunnels, static entries, flows, policy.
