//! Port mapping and reachability for oneway listeners.
//!
//! TODO: crate docs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod gateway;
mod mapper;
pub mod nat_behavior;
pub mod reachability;

pub use error::{PortmapError, Protocol};
pub use mapper::{
    Mapping, MappingEvent, MappingHandle, PCP_PORT, PortMapper, PortmapConfig, ProtocolChoice,
    SSDP_PORT,
};
pub use reachability::{
    NatFiltering, Reachability, ReachabilityInputs, Reason, Scope, Via, assess, is_public,
};
