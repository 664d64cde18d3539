//! TODO(skeleton): sinks
