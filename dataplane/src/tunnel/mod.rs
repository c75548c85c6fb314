//! Header templates, push and pop, and the tunnel-port table (filled by the tunnel work).
