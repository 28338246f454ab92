//! The proxy listener: accepts connections, speaks HTTP/1.1 and h2c (prior knowledge, detected
//! from the connection preface), applies the connection limits, and drains on shutdown.
//!
//! Like mini-redis's `run`, the caller binds the socket and owns the lifecycle, so tests use
//! ephemeral ports and stop the server when they want.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Limits;
use crate::lifecycle::{Lifecycle, Phase};
use crate::proxy::Proxy;

/// hyper's own read buffer; heads between `limits.max_header_bytes` and this get driftwatch's
/// 431, larger ones hyper's bare 431 (hyper cannot hand over a head it could not buffer).
const MIN_READ_BUFFER: usize = 400 * 1024;

/// Serves `proxy` on `listener` until the lifecycle reaches [`Phase::Closing`], then closes the
/// listener (new connections are refused) and lets open connections finish their exchanges for up
/// to `grace`; connections still open after it are cut.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    limits: &Limits,
    lifecycle: Lifecycle,
    grace: Duration,
) {
    let builder = connection_builder(limits);
    let connection_slots = Arc::new(Semaphore::new(limits.max_connections.get()));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let closing = lifecycle.reached(Phase::Closing);
    tokio::pin!(closing);

    loop {
        while connections.try_join_next().is_some() {}
        // At the connection cap, stop accepting: further clients wait in the kernel backlog.
        let slot = tokio::select! {
            slot = connection_slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut closing => break,
        };
        let (stream, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut closing => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), proxy.service(client_addr))
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%client_addr, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(remaining = connections.len(), "shutdown grace expired; cutting connections");
        }
    }
    connections.shutdown().await;
}

fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MIN_READ_BUFFER.max(limits.max_header_bytes.get() * 2))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes.get() * 2).unwrap_or(u32::MAX));
    builder
}
