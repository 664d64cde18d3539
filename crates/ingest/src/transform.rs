//! TODO(skeleton): transform
