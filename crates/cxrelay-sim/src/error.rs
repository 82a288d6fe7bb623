//! Typed errors of the simulator: bad settings, bind failures and signal handling.

use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong while configuring or running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration or fault setting is out of range.
    #[error("invalid simulator setting `{field}`: {reason}")]
    InvalidSetting {
        /// Name of the offending setting.
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot bind simulator on {addr}: {source}")]
    Bind {
        /// Address that was asked for.
        addr: SocketAddr,
        /// Underlying OS error.
        #[source]
        source: io::Error,
    },
    /// Installing or waiting for the shutdown signal handlers failed.
    #[error("cannot wait for shutdown signal: {0}")]
    Signal(#[source] io::Error),
    /// Writing the readiness line to stdout failed.
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] io::Error),
}

impl SimError {
    /// Shorthand for [`SimError::InvalidSetting`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SimError::InvalidSetting { field, reason: reason.into() }
    }
}
