//! TODO(skeleton): batcher
