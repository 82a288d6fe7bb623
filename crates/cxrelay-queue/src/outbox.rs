//! The webhook outboxes as the dispatcher sees them: where events wait (a run's outbox stream,
//! or a tenant's breaker event stream), how far each endpoint has got in each (a cursor, with
//! its retry state, kept in the source's own hash so it shares the source's slot and lifetime),
//! who is delivering a source to an endpoint right now (a lease lock), and each endpoint's
//! delivery status. Events are written by the scripts that make them (see `audit.lua`).

use std::collections::HashMap;
use std::time::Duration;

use cxrelay_core::RunId;
use redis::AsyncCommands;

use crate::scripts;

use crate::store::{QueueError, Store};

/// A stream of webhook events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboxSource {
    /// A run's outbox.
    Run(RunId),
    /// A tenant's breaker events.
    Breaker(String),
}

/// One event waiting in an outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Stream entry id (orders the events; part of the `webhook-id`).
    pub id: String,
    /// Event type (`run.completed`, …).
    pub kind: String,
    /// When it happened, ms since the epoch (from the entry id).
    pub at_ms: u64,
    /// Its `data` object.
    pub data: serde_json::Value,
}

/// How far one endpoint has got in one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Last delivered (or skipped) entry id; `"0"` before the first.
    pub after: String,
    /// Failed attempts at the next event.
    pub tries: u32,
    /// Not before this time (ms since the epoch) after a failed attempt.
    pub next_ms: u64,
    /// Events passed so far (delivered, skipped or given up), counted from the source's first:
    /// set against the events the length cap trimmed, it tells how many this endpoint never had.
    /// `None` for a cursor stored before it was counted.
    pub passed: Option<u64>,
}

impl Cursor {
    /// Moves past event `id` (delivered, skipped or given up).
    pub fn pass(&mut self, id: &str) {
        *self = Cursor { after: id.to_owned(), tries: 0, next_ms: 0, passed: self.passed.map(|n| n + 1) };
    }
}

struct SourceKeys {
    stream: String,
    /// Where the cursors live: the run's state hash (they expire with the run), or the tenant's
    /// breaker cursor hash (no expiry: the breaker's event stream has none either).
    hash: String,
    lock: String,
    /// Cursors are written only while `hash` exists (a run's state).
    hash_must_exist: bool,
}

impl Store {
    fn source_keys(&self, source: &OutboxSource, endpoint: &str) -> SourceKeys {
        match source {
            OutboxSource::Run(run) => {
                let k = self.keys().run(run);
                SourceKeys { lock: format!("{}:lock:{endpoint}", k.outbox), stream: k.outbox, hash: k.state, hash_must_exist: true }
            }
            OutboxSource::Breaker(tenant) => SourceKeys {
                stream: self.keys().breaker_events(tenant),
                hash: format!("{}:webhooks", self.keys().breaker(tenant)),
                lock: format!("{}:whlock:{endpoint}", self.keys().breaker(tenant)),
                hash_must_exist: false,
            },
        }
    }

    /// Runs of a tenant whose outbox may hold undelivered events.
    pub async fn hinted_outboxes(&self, tenant: &str) -> Result<Vec<String>, QueueError> {
        Ok(self.conn().smembers(self.keys().outbox_runs(tenant)).await?)
    }

    /// Drops a run's hint (its outbox is delivered to every endpoint, or the run is gone).
    pub async fn unhint_outbox(&self, tenant: &str, run: &str) -> Result<(), QueueError> {
        let _: () = self.conn().srem(self.keys().outbox_runs(tenant), run).await?;
        Ok(())
    }

    /// Takes (or renews) the lease on delivering `source` to `endpoint`; false if another
    /// process holds it (see outbox_lock.lua).
    pub async fn lock_outbox(&self, source: &OutboxSource, endpoint: &str, holder: &str, lease: Duration) -> Result<bool, QueueError> {
        let k = self.source_keys(source, endpoint);
        let held: u8 = scripts::OUTBOX_LOCK.key(&k.lock).arg(holder).arg(lease.as_millis() as u64).invoke_async(&mut self.conn()).await?;
        Ok(held == 1)
    }

    /// Gives the lease back if `holder` still holds it.
    pub async fn unlock_outbox(&self, source: &OutboxSource, endpoint: &str, holder: &str) -> Result<(), QueueError> {
        let k = self.source_keys(source, endpoint);
        let _: u8 = scripts::OUTBOX_UNLOCK.key(&k.lock).arg(holder).invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    /// The endpoint's cursor in `source`.
    pub async fn outbox_cursor(&self, source: &OutboxSource, endpoint: &str) -> Result<Cursor, QueueError> {
        let k = self.source_keys(source, endpoint);
        let (after, tries, next, passed): (Option<String>, Option<u32>, Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&k.hash)
            .arg(format!("wh:{endpoint}"))
            .arg(format!("wht:{endpoint}"))
            .arg(format!("whn:{endpoint}"))
            .arg(format!("whp:{endpoint}"))
            .query_async(&mut self.conn())
            .await?;
        // A new cursor has passed nothing; an old one without the count is not judged.
        let passed = if after.is_none() { Some(0) } else { passed };
        Ok(Cursor { after: after.unwrap_or_else(|| "0".into()), tries: tries.unwrap_or(0), next_ms: next.unwrap_or(0), passed })
    }

    /// Stores the endpoint's cursor in `source` while `holder` holds the lease; false when it
    /// does not any more (or the run is gone), and nothing was written.
    pub async fn set_outbox_cursor(&self, source: &OutboxSource, endpoint: &str, holder: &str, c: &Cursor) -> Result<bool, QueueError> {
        let k = self.source_keys(source, endpoint);
        let stored: u8 = scripts::OUTBOX_CURSOR
            .key(&k.lock)
            .key(&k.hash)
            .arg(holder)
            .arg(endpoint)
            .arg(&c.after)
            .arg(c.tries)
            .arg(c.next_ms)
            .arg(if k.hash_must_exist { "1" } else { "0" })
            .arg(c.passed.map_or_else(String::new, |n| n.to_string()))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(stored == 1)
    }

    /// Up to `count` events of `source` after entry `after`, oldest first.
    pub async fn outbox_events(&self, source: &OutboxSource, after: &str, count: usize) -> Result<Vec<OutboxEvent>, QueueError> {
        let k = self.source_keys(source, "");
        let start = if after == "0" { "-".to_owned() } else { format!("({after}") };
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(&k.stream).arg(start).arg("+").arg("COUNT").arg(count).query_async(&mut self.conn()).await?;
        Ok(entries
            .into_iter()
            .map(|(id, mut f)| {
                let at_ms = id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
                let kind = f.remove("type").unwrap_or_default();
                let data = match f.remove("data") {
                    Some(json) => serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
                    // Breaker events carry plain fields.
                    None => serde_json::Value::Object(
                        f.into_iter()
                            .map(|(k, v)| (k, v.parse::<i64>().map(serde_json::Value::from).unwrap_or(serde_json::Value::String(v))))
                            .collect(),
                    ),
                };
                OutboxEvent { id, kind, at_ms, data }
            })
            .collect())
    }

    /// Records `n` deliveries to endpoint `ep` (`url` masked) for `webhooks status`.
    pub async fn webhook_delivered(&self, tenant: &str, ep: &str, url: &str, n: u64, now_ms: u64) -> Result<(), QueueError> {
        let key = self.keys().webhook_status(tenant);
        let mut pipe = redis::pipe();
        pipe.hincr(&key, format!("{ep}:delivered"), n)
            .hset(&key, format!("{ep}:url"), url)
            .hset(&key, format!("{ep}:last_success_ms"), now_ms)
            .hdel(&key, format!("{ep}:failing_since"));
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Records a failed attempt (the endpoint is failing since the first of a row).
    pub async fn webhook_failed(&self, tenant: &str, ep: &str, url: &str, now_ms: u64, error: &str) -> Result<(), QueueError> {
        let key = self.keys().webhook_status(tenant);
        let mut pipe = redis::pipe();
        pipe.hincr(&key, format!("{ep}:failures"), 1).hset(&key, format!("{ep}:url"), url).hset_nx(&key, format!("{ep}:failing_since"), now_ms).hset(
            &key,
            format!("{ep}:last_error"),
            error,
        );
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// How many events of `source` its length cap has removed (added in all, less those left).
    pub async fn outbox_trimmed(&self, source: &OutboxSource) -> Result<u64, QueueError> {
        let k = self.source_keys(source, "");
        let info: redis::RedisResult<HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("STREAM").arg(&k.stream).query_async(&mut self.conn()).await;
        // No stream yet (or gone): nothing trimmed.
        let Ok(info) = info else { return Ok(0) };
        let num = |field: &str| info.get(field).and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok()).unwrap_or(0);
        Ok(num("entries-added").saturating_sub(num("length")))
    }

    /// Records `n` events the outbox's length cap removed before endpoint `ep` had them.
    pub async fn webhook_trimmed(&self, tenant: &str, ep: &str, n: u64) -> Result<(), QueueError> {
        let _: () = self.conn().hincr(self.keys().webhook_status(tenant), format!("{ep}:trimmed"), n).await?;
        Ok(())
    }

    /// Records an event given up after retrying for its maximum age.
    pub async fn webhook_dropped(&self, tenant: &str, ep: &str) -> Result<(), QueueError> {
        let _: () = self.conn().hincr(self.keys().webhook_status(tenant), format!("{ep}:dropped"), 1).await?;
        Ok(())
    }

    /// Every endpoint's delivery status fields of a tenant (`EP:field` → value).
    pub async fn webhook_statuses(&self, tenant: &str) -> Result<HashMap<String, String>, QueueError> {
        Ok(self.conn().hgetall(self.keys().webhook_status(tenant)).await?)
    }

    /// Id of the newest event of `source` (`None`: empty or gone).
    pub async fn outbox_last_id(&self, source: &OutboxSource) -> Result<Option<String>, QueueError> {
        let k = self.source_keys(source, "");
        let last: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XREVRANGE").arg(&k.stream).arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut self.conn()).await?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }
}
