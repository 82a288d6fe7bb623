//! One module per subcommand.

pub mod enqueue;
pub mod report;
pub mod worker;
