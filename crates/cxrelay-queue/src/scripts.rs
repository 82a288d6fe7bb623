//! The Lua scripts, one per atomic operation; each `.lua` file beside this one documents the
//! keys it touches. Scripts are sent by hash and reloaded transparently after a Redis restart.
//! `deliverable.lua` is a prelude shared by the two scripts that hand out stream entries, and
//! `audit.lua` one shared by the scripts that write a run's audit stream or webhook outbox.

use std::sync::LazyLock;

use redis::Script;

/// Create a run (state hash and consumer group) or find the existing one.
pub static CREATE_RUN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/create_run.lua")));
/// Append a chunk of items to a run, all or nothing, skipping indexes already enqueued.
pub static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/enqueue.lua")));
/// Make a fully loaded run visible to workers.
pub static SEAL: LazyLock<Script> = LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/seal.lua"))));
/// Promote due retries and deliver new items, skipping recorded successes.
pub static FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("scripts/deliverable.lua"), include_str!("scripts/fetch.lua"))));
/// Take over items whose lease expired.
pub static RECLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("scripts/deliverable.lua"), include_str!("scripts/reclaim.lua"))));
/// Record outcomes and acknowledge deliveries in one step.
pub static CHECKPOINT: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/checkpoint.lua"))));
/// Put a batch of failed items back in the queue.
pub static REPLAY: LazyLock<Script> = LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/replay.lua"))));
/// Pause, resume or cancel a run.
pub static CONTROL: LazyLock<Script> = LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/control.lua"))));
/// Take or renew the lease on delivering an outbox to a webhook endpoint.
pub static OUTBOX_LOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/outbox_lock.lua")));
/// Give a delivery lease back if still held.
pub static OUTBOX_UNLOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/outbox_unlock.lua")));
/// Store an endpoint's cursor in an outbox while holding its lease.
pub static OUTBOX_CURSOR: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/outbox_cursor.lua")));
/// Remove dead workers' consumers (idle, holding nothing) from a run's group.
pub static PRUNE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/prune.lua")));
/// Reserve the next send slot of a fleet-wide rate budget.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/acquire.lua")));
/// Pause a budget after a 429 and lower its adaptive rate.
pub static THROTTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/throttle.lua")));
/// Take a limit the target stated as a discovering budget's ceiling.
pub static HINT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/hint.lua")));
/// Remaining fleet-wide pause of a budget.
pub static PAUSE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/pause.lua")));
/// The fleet-wide circuit breaker of a target.
pub static BREAKER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/breaker.lua")));

/// `export_slot.lua`: one export submission in flight per data action, spaced.
pub static EXPORT_SLOT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/export_slot.lua")));
/// `export_submitted.lua`: record an accepted export execution on its run.
pub static EXPORT_SUBMITTED: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/export_submitted.lua"))));
/// `export_finish.lua`: an export execution completes, fails or becomes overdue.
pub static EXPORT_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("scripts/audit.lua"), include_str!("scripts/export_finish.lua"))));
/// `export_claim.lua`: take the polled export executions that are due.
pub static EXPORT_CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/export_claim.lua")));
