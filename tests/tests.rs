//! Kettle's one integration-test binary (one binary links once, as in
//! ripgrep): each module below drives the real thing from outside.

// The `kettle` binary's allocator, so that the in-process servers (the load
// benchmark's above all) run as they ship.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod circuits;
mod cli;
mod library;
mod mpi;
mod noise;
mod readme;
mod reliability;
mod serve;
mod server;
mod server_draw;
mod server_load;
mod server_restart;
mod server_util;
mod util;
