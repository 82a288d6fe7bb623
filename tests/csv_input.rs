//! CSV input end to end: a header row plus rows become items (quoted fields, embedded newlines
//! and delimiters, a BOM); a ragged row is that item's validation failure with its line; an
//! unusable header is exit 2 with nothing enqueued; delivered items carry the row's fields; a
//! 200 MB file is streamed through the producer in bounded memory.

mod harness;

use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rows_are_items_and_ragged_rows_fail_alone() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let file = env.write_file("contacts.csv", b"\xEF\xBB\xBFcustomer_id;name;note\nc1;Ann;plain\nc2;\"Bo; Jr\";\"two\nlines\"\nc3;Cy\nc4;Di;ok\n");
    let out = env.cxrelay().args(["enqueue", "--action", "a", "--run-id", "csv1", "--delimiter", ";"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "one rejected row: {err}");
    assert!(err.contains("row at line 5 has 2 fields; the header has 3"), "{err}");
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("csv1", Duration::from_secs(30)).await;
    assert_eq!((report.succeeded, report.validation_failures), (3, 1));
    assert_eq!(env.sim.ledger().applied, 3);

    let bad = env.write_file("bad.csv", b"id,,name\n1,2,3\n");
    let out = env.cxrelay().args(["enqueue", "--action", "a", "--run-id", "csv2"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("header column 2 has no name") && err.contains("nothing was enqueued"), "{err}");
    assert_eq!(env.cxrelay().args(["report", "csv2"]).output().unwrap().status.code(), Some(2), "no run was left");
    let out = env.cxrelay().args(["enqueue", "--action", "a", "--delimiter", "#"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --delimiter \"#\""));

    // An unclosed quote would otherwise swallow the rest of the file into one field of one row.
    let unclosed = env.write_file("unclosed.csv", b"id,note\n1,fine\n2,\"never closed\n3,lost\n4,lost\n");
    let out = env.cxrelay().args(["enqueue", "--action", "a", "--run-id", "csv3"]).arg(&unclosed).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("malformed CSV at line 3") && err.contains("never closed") && err.contains("nothing was enqueued"), "{err}");
    assert_eq!(env.cxrelay().args(["report", "csv3"]).output().unwrap().status.code(), Some(2), "no run was left");
}

/// Runs `cmd` and returns its output and peak resident memory in bytes (`wait4`'s `ru_maxrss`:
/// the child's own peak, whatever other tests run meanwhile).
// The child is reaped by `wait4` (which `Child::wait` cannot replace: it reports no rusage).
#[allow(clippy::zombie_processes)]
fn output_and_peak_rss(mut cmd: std::process::Command) -> (std::process::Output, u64) {
    use std::io::Read;
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).unwrap();
        buf
    });
    let mut stdout = Vec::new();
    out.read_to_end(&mut stdout).unwrap();
    let stderr = err_reader.join().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, not yet waited for; both out-pointers are valid.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    (std::process::Output { status, stdout, stderr }, usage.ru_maxrss as u64 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_csv_is_streamed_in_bounded_memory() {
    use std::io::Write;
    let env = TestEnv::start(SimConfig::default()).await;
    let path = env.dir.join("big.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "customer_id,name,note,padding").unwrap();
    let padding = "x".repeat(150);
    let mut rows = 0u64;
    while file.get_ref().metadata().unwrap().len() < 200 * 1024 * 1024 {
        for _ in 0..10_000 {
            writeln!(file, "c{rows},\"Name, {rows}\",\"line one\nline two\",{padding}").unwrap();
            rows += 1;
        }
        file.flush().unwrap();
    }
    drop(file);
    let mut cmd = env.cxrelay();
    cmd.args(["enqueue", "--json", "--format", "csv", "--action", "a", "--run-id", "big-csv", "--max-items", "1000"]).arg(&path);
    let (out, peak) = output_and_peak_rss(cmd);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["read"], rows, "every row was read: {summary}");
    assert_eq!((summary["accepted"].clone(), summary["beyond_max"].clone()), (serde_json::json!(1000), serde_json::json!(rows - 1000)));
    assert!(peak <= 64 * 1024 * 1024, "the producer's peak RSS was {} MB for a 200 MB file", peak / (1024 * 1024));
}
