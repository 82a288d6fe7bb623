//! The producer: streams an input (JSON array or NDJSON) into a run, chunk by chunk.
//!
//! Parsing runs on a blocking thread and hands bounded chunks to the async side, which writes
//! each chunk with one script call; memory stays flat whatever the input size. A run becomes
//! visible to workers only when the whole input was read, so a malformed file leaves nothing
//! behind: the run is deleted and the error names the line and column.

use std::io::Read;

use cxrelay_core::input::{read_items, InputError, InputFormat};
use cxrelay_core::now_ms;
use cxrelay_core::payload::{BodyShape, BodyTemplate};
use cxrelay_core::RunId;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::store::{ChunkItem, NewRun, QueueError, Store};

/// Items per chunk (one script call each).
const CHUNK_ITEMS: usize = 1000;
/// Bytes per chunk, so chunks of large items stay small.
const CHUNK_BYTES: usize = 1 << 20;
/// Rejections kept for the summary (all are recorded in Redis).
const MAX_REPORTED_REJECTIONS: usize = 1000;

/// What to enqueue.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// Run id; generated when absent. Re-using an id resumes that run without duplicates.
    pub run_id: Option<RunId>,
    /// Target action id.
    pub action: String,
    /// The tenant the run belongs to.
    pub tenant: String,
    /// Key items on this field's value instead of a per-run key; items without it are rejected.
    pub idempotency_field: Option<String>,
    /// Where the input comes from (file name or `stdin`), recorded in the run and the payload.
    pub source: String,
    /// Input format.
    pub format: InputFormat,
    /// The seed's max-iterations break: items at index ≥ this are not enqueued.
    pub max_items: Option<u64>,
    /// Body shape, for the payload size check.
    pub body: BodyShape,
    /// Largest body the target takes (the profile's; the seed's 256 KB by default).
    pub payload_limit: usize,
    /// Failure-rate guard (percent, window), if any.
    pub guard: Option<(f64, u32)>,
    /// Fields set on the run's state at creation (its kind, an export's parameters).
    pub extra: Vec<(String, String)>,
}

/// One item rejected by validation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Index in the input.
    pub index: u64,
    /// Line where the item ends (1-based; NDJSON: its line).
    pub line: u64,
    /// Column where the item ends.
    pub column: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// What the producer did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnqueueSummary {
    /// The run.
    pub run_id: String,
    /// Items accepted for delivery by this call.
    pub accepted: u64,
    /// Items rejected by validation by this call.
    pub rejected: u64,
    /// Items skipped because an earlier call with the same run id already enqueued them.
    pub already_enqueued: u64,
    /// Items past `--max-items`, not enqueued.
    pub beyond_max: u64,
    /// Items read from the input.
    pub read: u64,
    /// The run's status afterwards.
    pub status: cxrelay_core::report::RunStatus,
    /// The first rejections (index, position, reason).
    pub rejections: Vec<Rejection>,
}

/// Why nothing (more) was enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The input is malformed; `discarded` says whether the new run was removed.
    #[error("{source}; nothing was enqueued")]
    Input {
        /// The parse error with its position.
        source: InputError,
    },
    /// The input holds no items.
    #[error("input contains no items (an empty array); nothing was enqueued")]
    Empty,
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

struct Chunk {
    first: u64,
    items: Vec<ChunkItem>,
}

/// Streams `input` into a run; `on_progress` is called with the count of items read so far.
pub async fn enqueue<R>(store: &Store, req: EnqueueRequest, input: R, on_progress: impl Fn(u64)) -> Result<EnqueueSummary, EnqueueError>
where
    R: Read + Send + 'static,
{
    let run = req.run_id.clone().unwrap_or_else(|| RunId::generate(now_ms()));
    let new = NewRun {
        action: &req.action,
        tenant: &req.tenant,
        source: &req.source,
        max_items: req.max_items,
        idempotency_field: req.idempotency_field.as_deref(),
        guard: req.guard,
        extra: &req.extra,
    };
    let created = store.create_run(&run, &new).await?;
    let key_field = req.idempotency_field.clone();
    let template = BodyTemplate::new(req.body, &req.action, &req.source, run.as_str()).with_limit(req.payload_limit);

    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let max_items = req.max_items;
    let format = req.format;
    let reader = tokio::task::spawn_blocking(move || {
        let mut chunk = Chunk { first: 0, items: Vec::with_capacity(CHUNK_ITEMS) };
        let mut bytes = 0usize;
        let mut beyond = 0u64;
        let mut rejections = Vec::new();
        let mut rejected = 0u64;
        let read = read_items(input, format, |it| {
            if max_items.is_some_and(|m| it.index >= m) {
                beyond += 1;
                return Ok(());
            }
            let json = it.json.get();
            let checked = match &it.invalid {
                Some(why) => Err(why.clone()),
                None => Ok(()),
            }
            .and_then(|()| template.check(it.index, json).map_err(|e| e.to_string()))
            .and_then(|()| match &key_field {
                Some(f) if cxrelay_core::ids::field_value(json, f).is_none() => {
                    Err(format!("the idempotency field {f:?} is missing, empty or not a string or number"))
                }
                _ => Ok(()),
            });
            let entry = match checked {
                Ok(()) => ChunkItem::Valid(json.to_owned()),
                Err(e) => {
                    rejected += 1;
                    let reason = format!("item {} (ending at line {}, column {}): {e}", it.index, it.line, it.column);
                    if rejections.len() < MAX_REPORTED_REJECTIONS {
                        rejections.push(Rejection { index: it.index, line: it.line, column: it.column, reason: reason.clone() });
                    }
                    ChunkItem::Invalid(reason)
                }
            };
            bytes += match &entry {
                ChunkItem::Valid(s) | ChunkItem::Invalid(s) => s.len(),
            };
            if chunk.items.is_empty() {
                chunk.first = it.index;
            }
            chunk.items.push(entry);
            if chunk.items.len() >= CHUNK_ITEMS || bytes >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Chunk { first: 0, items: Vec::with_capacity(CHUNK_ITEMS) });
                bytes = 0;
                tx.blocking_send(full).map_err(|_| "the queue writer stopped".to_owned())?;
            }
            Ok(())
        });
        if !chunk.items.is_empty() && read.is_ok() {
            let _ = tx.blocking_send(chunk);
        }
        (read, beyond, rejected, rejections)
    });

    // Write chunks as they come; remember a Redis failure but keep draining so the reader ends.
    let mut accepted = 0u64;
    let mut skipped = 0u64;
    let mut written = 0u64;
    let mut write_error = None;
    while let Some(chunk) = rx.recv().await {
        if write_error.is_some() {
            continue;
        }
        match store.enqueue_chunk(&run, chunk.first, &chunk.items).await {
            Ok(c) => {
                accepted += c.accepted;
                skipped += c.skipped;
                written += chunk.items.len() as u64;
                on_progress(written);
            }
            Err(e) => write_error = Some(e),
        }
    }
    let (read, beyond_max, rejected, rejections) = reader.await.expect("input reader panicked");
    if let Some(e) = write_error {
        // Chunks are atomic and the run stays `loading`: nothing is delivered, and re-running
        // with the same run id continues after the last chunk that was written.
        return Err(e.into());
    }
    let read = match read {
        Ok(n) => n,
        Err(source) => {
            if created.created {
                store.discard_run(&run, &req.tenant).await?;
            }
            return Err(EnqueueError::Input { source });
        }
    };
    if read == 0 {
        if created.created {
            store.discard_run(&run, &req.tenant).await?;
        }
        return Err(EnqueueError::Empty);
    }
    let break_condition = (beyond_max > 0).then(|| format!("maximum iteration count ({}) reached", max_items.unwrap_or(0)));
    let status = store.seal(&run, beyond_max, break_condition.as_deref()).await?;
    Ok(EnqueueSummary { run_id: run.to_string(), accepted, rejected, already_enqueued: skipped, beyond_max, read, status, rejections })
}
