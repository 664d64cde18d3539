//! TODO(skeleton): direct
