//! TODO(skeleton): kinesis
