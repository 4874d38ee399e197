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
