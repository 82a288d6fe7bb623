//! cxrelay-cxone: the HTTP client for the target API (NICE CXone-style "Data Actions").
//!
//! - [`Secret`] (from `cxrelay-core`): the only holder of client secrets and tokens.
//! - [`auth`]: authentication profiles ([`AuthConfig`]) and the token endpoint exchange.
//! - [`token`]: the process-wide, single-flight [`TokenCache`], and the [`Clock`] it reads.
//! - [`client`]: [`TargetClient`], which executes one item as one POST and reports an
//!   [`Attempt`] (never an error).
//!
//! This crate knows nothing of queues, runs or retry policy: it sends one request (plus the one
//! 401 retry) and describes what happened.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
mod text;
pub mod token;

pub use auth::{AuthConfig, AuthError, DEFAULT_TOKEN_LIFETIME};
pub use client::{
    fill_path, Attempt, ClientConfig, ClientError, TargetClient, TransportError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EXECUTE_PATH,
    DEFAULT_POOL_MAX_IDLE_PER_HOST, DEFAULT_REQUEST_TIMEOUT,
};
pub use cxrelay_core::Secret;
pub use reqwest::Method;
pub use token::{AccessToken, Clock, ManualClock, TokenCache, DEFAULT_REFRESH_MARGIN, FAILURE_COOLDOWN};
