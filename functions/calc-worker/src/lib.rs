//! The calc worker's hosts.
