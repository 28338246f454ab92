//! Graceful shutdown exactly as SPEC §4 describes: `/readyz` turns 503 at once; new connections
//! are still accepted for `shutdown.delay`; then they are refused; in-flight exchanges finish.

mod support;

use std::time::{Duration, Instant};

use driftwatch::config::units::HumanDuration;
use support::{MockUpstream, Running, http1_client, test_config};
use tokio::net::TcpStream;

#[tokio::test]
async fn shutdown_drains_in_flight_and_refuses_after_the_delay() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.shutdown.delay = HumanDuration::from_millis(1000);
    file.shutdown.grace = HumanDuration::from_secs(10);
    let mut proxy = Running::start(file).await;
    let client = http1_client();

    let ready = client
        .request(support::get(&proxy.admin_url("/readyz")))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // An exchange in flight when the signal arrives, lasting past the delay.
    let in_flight = tokio::spawn(client.request(support::get(&proxy.url("/slow?ms=2500"))));
    for _ in 0..100 {
        if mock.requests() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    proxy.signal_shutdown();
    let stopped = proxy.join_handle();

    // /readyz is 503 at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ready = client
        .request(support::get(&proxy.admin_url("/readyz")))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body = support::body_bytes(ready).await;
    assert!(String::from_utf8_lossy(&body).contains("draining"));

    // During the delay, a brand-new connection is accepted and served.
    assert!(
        signalled.elapsed() < Duration::from_millis(800),
        "still inside the delay"
    );
    let fresh_client = http1_client();
    let served = fresh_client
        .request(support::get(&proxy.url("/echo")))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);

    // After the delay, new connections are refused.
    tokio::time::sleep(
        Duration::from_millis(1000).saturating_sub(signalled.elapsed())
            + Duration::from_millis(300),
    )
    .await;
    let refused = TcpStream::connect(proxy.addr).await;
    assert!(
        refused.is_err(),
        "connections after shutdown.delay are refused"
    );

    // The in-flight exchange completes normally.
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&support::body_bytes(response).await[..], b"slow");

    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("stops once in-flight work is done")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn grace_bounds_how_long_shutdown_waits() {
    let mock = MockUpstream::start().await;
    let mut file = test_config(mock.addr);
    file.shutdown.grace = HumanDuration::from_millis(300);
    let mut proxy = Running::start(file).await;
    let client = http1_client();
    let stuck = tokio::spawn(client.request(support::get(&proxy.url("/slow?ms=30000"))));
    for _ in 0..100 {
        if mock.requests() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    proxy.signal_shutdown();
    tokio::time::timeout(Duration::from_secs(5), proxy.join_handle())
        .await
        .expect("shutdown does not wait for the 30s exchange")
        .unwrap()
        .unwrap();
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        stuck.await.unwrap().is_err(),
        "the cut exchange fails at the client"
    );
}
