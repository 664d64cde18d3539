//! TODO(skeleton): firehose
