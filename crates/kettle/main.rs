//! The `kettle` command: see the `kettle-cli` crate.

use std::process::ExitCode;

// The job server allocates per request on several threads at once; glibc's
// allocator showed as 15% of the server's CPU under load, mimalloc as far
// less (see benches/RESULTS.md, job API load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kettle_cli::main()
}
