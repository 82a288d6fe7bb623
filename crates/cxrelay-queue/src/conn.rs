//! Connecting to Redis: a multiplexed connection manager that reconnects by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A cheap-to-clone, auto-reconnecting Redis connection.
pub type RedisConn = ConnectionManager;

/// Opens a connection manager for `url` (`redis://`, `rediss://`, `unix://`).
///
/// `response_timeout` bounds every command; blocking reads need their own connection whose
/// timeout exceeds the block time. Redis errors after this point are retried by callers: the
/// manager reconnects in the background, so a restart of Redis costs errors, not the process.
pub async fn connect(url: &str, response_timeout: Duration) -> redis::RedisResult<RedisConn> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}
