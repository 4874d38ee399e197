//! Noticing that a client hung up while its request is being handled.
//!
//! actix-web keeps running a handler after its client closes the
//! connection (HTTP/1 allows a client to half-close and still read the
//! answer), and only finds out when it writes the response. A submission
//! whose program takes seconds to check should stop then: dropping its
//! future stops the parse and frees its permit. So each connection keeps a
//! duplicate of its socket ([`on_connect`]), and [`client_gone`] peeks at
//! it: end of stream means the client closed (or half-closed) its side.
//!
//! `h1_allow_half_closed(false)` would make actix drop every handler at
//! end of stream, but it also drops answers already on their way to
//! clients that half-close after a request they expect refused (a body
//! over the limit); this is scoped to the handlers that ask.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// File descriptors each connection takes: its socket and the duplicate.
pub(crate) const FDS_PER_CONNECTION: usize = 2;
/// File descriptors kept for everything else (the database and its WAL,
/// listeners, the runtime's own, the data folder's lock).
const FDS_RESERVED: usize = 256;

/// Connections the process can hold open at once, at most `wanted`.
///
/// Raises the soft limit on open files to the hard one first, as Go's
/// runtime and nginx do (a soft limit of 1024 is a common default, far
/// below what a server is allowed). Where even the hard limit cannot hold
/// `wanted` connections at two descriptors each, fewer are allowed, so that
/// the connection cap, not a failed `accept`, turns clients away (they
/// wait in the kernel's backlog).
pub(crate) fn connections_within_file_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!("could not raise the open-file limit: {e}");
            }
        }
        if let Some(files) = getrlimit(Resource::Nofile).current {
            let files = usize::try_from(files).unwrap_or(usize::MAX);
            let fit = files.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION;
            if fit < wanted {
                tracing::warn!(
                    "max_connections is {wanted}, but the open-file limit ({files}) holds {fit} connections of {FDS_PER_CONNECTION} descriptors each; serving at most {fit} at once (raise `ulimit -n` for more)"
                );
                return fit.max(1);
            }
        }
    }
    wanted
}

/// How often a waiting handler looks at its connection.
const POLL: Duration = Duration::from_millis(100);

/// A duplicate of the connection's socket, for peeking only.
#[derive(Clone, Debug)]
struct PeerSocket(Arc<std::net::TcpStream>);

/// The `HttpServer::on_connect` hook: keeps a duplicate of each TCP
/// connection's socket in the connection's data.
pub(crate) fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    #[cfg(unix)]
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            let socket = std::net::TcpStream::from(fd);
            // The duplicate shares the original's non-blocking mode (set by
            // the runtime already): a peek never blocks a runtime thread.
            if socket.set_nonblocking(true).is_ok() {
                data.insert(PeerSocket(Arc::new(socket)));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (connection, data);
}

/// Resolves once the client of `req` has closed its side of the
/// connection; never, where that cannot be known.
pub(crate) async fn client_gone(req: &HttpRequest) {
    let Some(PeerSocket(socket)) = req.conn_data::<PeerSocket>().cloned() else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    loop {
        actix_web::rt::time::sleep(POLL).await;
        match socket.peek(&mut byte) {
            // End of stream, or the connection failed.
            Ok(0) => return,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            // Nothing new, or a pipelined request: still there.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_connection_cap_fits_the_open_file_limit() {
        use rustix::process::{Resource, getrlimit};
        let small = connections_within_file_limit(10);
        assert_eq!(small, 10);
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum, "the soft limit was raised");
        let most = connections_within_file_limit(usize::MAX);
        if let Some(files) = limit.current {
            let files = usize::try_from(files).unwrap_or(usize::MAX);
            assert!(most * FDS_PER_CONNECTION + FDS_RESERVED <= files.max(FDS_RESERVED + 2));
        }
    }
}
