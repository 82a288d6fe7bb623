//! CSV input end to end: a header row plus rows become items (quoted fields, embedded newlines
//! and delimiters, a BOM); a ragged row is that item's validation failure with its line; an
//! unusable header is exit 2 with nothing enqueued; delivered items carry the row's fields.

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
}
