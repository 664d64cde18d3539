//! TODO(skeleton): spill
