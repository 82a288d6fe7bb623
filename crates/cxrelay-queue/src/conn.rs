//! Connecting to Redis: one Redis (`redis://`, `rediss://` TLS, `unix://`; ACL `user:password@`
//! in the URL) or a Redis Cluster (several comma-separated node URLs, or one seed node with
//! `cluster` set), behind one cheap-to-clone [`RedisConn`] that reconnects by itself.
//!
//! Every script declares every key it touches in KEYS and a run's keys share one hash tag, so
//! the same calls work on both: the cluster client routes each call by its first key.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

/// Where Redis is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTarget {
    /// One URL, or several comma-separated node URLs of a Cluster.
    pub url: String,
    /// Treat a single URL as a seed node of a Redis Cluster.
    pub cluster: bool,
    /// PEM file of the CA that signed the server's TLS certificate (`rediss://` with a private
    /// CA); without it the system's and the public roots are trusted.
    pub ca_cert: Option<PathBuf>,
}

/// Redis URL used when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl RedisTarget {
    /// Where the settings say Redis is (`redis_url`, `redis_cluster`, `redis_ca_cert`).
    pub fn from_settings(settings: &cxrelay_core::config::Settings) -> Self {
        Self {
            url: settings.redis_url.clone().unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
            cluster: settings.redis_cluster,
            ca_cert: settings.redis_ca_cert.clone().map(Into::into),
        }
    }

    /// A single Redis at `url` (a comma-separated list selects Cluster).
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), cluster: false, ca_cert: None }
    }

    /// The URL as a person may see it: passwords masked.
    pub fn masked(&self) -> String {
        cxrelay_core::redact::mask_url(&self.url)
    }

    /// The node URLs.
    fn nodes(&self) -> Vec<&str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
    }

    /// True when this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.nodes().len() > 1
    }

    fn certificates(&self) -> redis::RedisResult<Option<TlsCertificates>> {
        let Some(path) = &self.ca_cert else { return Ok(None) };
        let pem = std::fs::read(path).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read the Redis CA certificate",
                format!("{}: {e}", path.display()),
            ))
        })?;
        Ok(Some(TlsCertificates { client_tls: None, root_cert: Some(pem) }))
    }
}

/// A cheap-to-clone, auto-reconnecting connection to one Redis or to a Cluster.
#[derive(Clone)]
pub enum RedisConn {
    /// One Redis, through a connection manager.
    Single(ConnectionManager),
    /// A Redis Cluster; calls are routed by their first key.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects to `target`.
///
/// `response_timeout` bounds every command; blocking reads need their own connection whose
/// timeout exceeds the block time. Redis errors after this point are retried by callers: the
/// connection reconnects in the background, so a restart of Redis costs errors, not the process.
pub async fn connect(target: &RedisTarget, response_timeout: Duration) -> redis::RedisResult<RedisConn> {
    let certs = target.certificates()?;
    if target.is_cluster() {
        let mut builder =
            ClusterClient::builder(target.nodes()).response_timeout(response_timeout).connection_timeout(Duration::from_secs(5)).retries(6);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        return Ok(RedisConn::Cluster(builder.build()?.get_async_connection().await?));
    }
    let client = match certs {
        Some(certs) => redis::Client::build_with_tls(target.url.as_str(), certs)?,
        None => redis::Client::open(target.url.as_str())?,
    };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    Ok(RedisConn::Single(ConnectionManager::new_with_config(client, config).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_nodes_is_a_cluster() {
        assert!(!RedisTarget::new("redis://a:1").is_cluster());
        assert!(RedisTarget::new("redis://a:1, redis://b:2").is_cluster());
        assert!(RedisTarget { cluster: true, ..RedisTarget::new("redis://a:1") }.is_cluster());
        assert_eq!(RedisTarget::new("redis://u:secret@a:1").masked(), "redis://u:****@a:1");
    }
}
