//! Kettle's one integration-test binary (one binary links once, as in
//! ripgrep): each module below drives the real thing from outside.

mod circuits;
mod cli;
mod library;
mod serve;
mod server;
mod server_load;
mod server_restart;
mod server_util;
mod util;
