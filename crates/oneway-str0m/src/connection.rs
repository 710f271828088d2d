//! The handle an application holds for one authenticated connection: the same type for every
//! stack, from `oneway-connection`.

pub use oneway_connection::{
    ChannelRef, Connection, ConnectionError, ConnectionEvent, ConnectionInfo, DriverGuard, Stage,
    Timings,
};
