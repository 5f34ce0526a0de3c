//! The public vocabulary every loss family shares.

pub mod buffers;
pub mod host;
pub mod kinds;
pub mod linear;
pub mod merge;
pub mod reduction;
pub mod shard;
