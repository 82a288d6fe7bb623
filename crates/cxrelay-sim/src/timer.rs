//! A precise delay for simulated latency.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds every deadline up, so a 50 ms
//! `sleep` ends 1–2 ms late; at concurrency 64 that alone costs a throughput benchmark 3% of
//! its ideal. One OS thread, shared by the process, keeps a heap of deadlines and wakes each
//! waiter with an OS-level timed wait (tens of microseconds of slack) instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::oneshot;

/// One waiter: its deadline, an insertion number that keeps heap order total, and its wake-up.
struct Waiter {
    deadline: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Waiter>>,
    next_seq: u64,
}

struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// The process's timer, started on first use; its thread sleeps in `Condvar::wait` when idle.
fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer { queue: Mutex::default(), changed: Condvar::new() }));
        std::thread::Builder::new().name("sim-precise-timer".into()).spawn(move || timer.run()).expect("spawn the simulator's timer thread");
        timer
    })
}

impl Timer {
    fn run(&self) {
        let mut queue = self.queue.lock().expect("timer queue");
        loop {
            let now = Instant::now();
            while queue.heap.peek().is_some_and(|Reverse(w)| w.deadline <= now) {
                let Reverse(w) = queue.heap.pop().expect("peeked");
                // The request may have been dropped (client gone): nothing to wake then.
                let _ = w.wake.send(());
            }
            queue = match queue.heap.peek() {
                Some(Reverse(next)) => {
                    let wait = next.deadline.saturating_duration_since(now);
                    self.changed.wait_timeout(queue, wait).expect("timer queue").0
                }
                None => self.changed.wait(queue).expect("timer queue"),
            };
        }
    }
}

/// Completes at `deadline`, late by tens of microseconds rather than tokio's 1–2 ms.
pub(crate) async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    let (wake, woken) = oneshot::channel();
    let timer = timer();
    {
        let mut queue = timer.queue.lock().expect("timer queue");
        let seq = queue.next_seq;
        queue.next_seq += 1;
        let earliest = queue.heap.peek().is_none_or(|Reverse(w)| deadline < w.deadline);
        queue.heap.push(Reverse(Waiter { deadline, seq, wake }));
        // Only a new earliest deadline changes how long the thread must wait.
        if earliest {
            timer.changed.notify_one();
        }
    }
    let _ = woken.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_each_waiter_at_its_deadline_in_order() {
        let start = Instant::now();
        let delays = [30u64, 10, 20, 10];
        let tasks: Vec<_> = delays
            .iter()
            .map(|&ms| {
                tokio::spawn(async move {
                    let deadline = start + Duration::from_millis(ms);
                    sleep_until(deadline).await;
                    (Instant::now(), deadline)
                })
            })
            .collect();
        for (task, ms) in tasks.into_iter().zip(delays) {
            let (woke, deadline) = task.await.unwrap();
            assert!(woke >= deadline, "{ms} ms waiter woke early");
            // The bound is loose for a noisy CI machine; precision is what the benchmark shows.
            let late = woke - deadline;
            assert!(late < Duration::from_millis(50), "{ms} ms waiter woke {late:?} late");
        }
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once() {
        sleep_until(Instant::now() - Duration::from_millis(5)).await;
    }
}
