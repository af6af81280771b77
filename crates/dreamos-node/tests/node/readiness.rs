//! `/readyz` follows the database: a node on PostgreSQL whose database becomes unreachable
//! (here a TCP proxy in front of it is cut, dropping every connection) answers 503 while
//! `/healthz` stays 200, and 200 again once the database is back.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{config, eventually};

pub(crate) fn pg_url() -> String {
    std::env::var("DREAMOS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Where PostgreSQL listens, or `None` (a skip outside CI, a failure in it).
pub(crate) fn postgres_address() -> Option<SocketAddr> {
    let url = reqwest::Url::parse(&pg_url()).expect("DREAMOS_TEST_PG is a URL");
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, url.port().unwrap_or(5432)))
        .ok()
        .and_then(|mut a| a.next());
    let reachable = addr
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "PostgreSQL is required in CI but unreachable at {}",
            pg_url()
        );
        eprintln!("SKIPPED: PostgreSQL unreachable at {}", pg_url());
        return None;
    }
    addr
}

/// A TCP proxy to `upstream` that can be cut (every connection dropped, new ones refused) and
/// restored on the same port.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, addr, upstream, cut_rx));
        Self { addr, cut }
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut cut: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a.ok(),
            _ = cut.wait_for(|c| *c) => None,
        };
        if let Some((conn, _)) = accepted {
            tokio::spawn(pipe(conn, upstream, cut.clone()));
            continue;
        }
        if !*cut.borrow() {
            continue;
        }
        drop(listener);
        if cut.wait_for(|c| !*c).await.is_err() {
            return;
        }
        listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
    }
}

async fn pipe(mut conn: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut up) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut conn, &mut up) => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}

async fn ready(base: &str) -> (u16, Value) {
    match reqwest::get(format!("{base}/readyz")).await {
        Ok(r) => {
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default()["status"].clone())
        }
        Err(e) => panic!("the node itself stopped answering: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let Some(upstream) = postgres_address() else { return };
    let proxy = Proxy::start(upstream).await;
    let mut url = reqwest::Url::parse(&pg_url()).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.store = url.to_string();
    let schema = format!("t_readyz_{}", std::process::id());
    cfg.store_schema = Some(schema.clone());
    let node = dreamos_node::Node::start(cfg).await.unwrap();
    let base = format!("http://{}", node.addr);
    assert_eq!(ready(&base).await, (200, json!("ready")));

    proxy.cut.send_replace(true);
    assert!(
        eventually(Duration::from_secs(15), || {
            let base = base.clone();
            async move { ready(&base).await == (503, json!("store_unavailable")) }
        })
        .await,
        "still ready without a database"
    );
    let live = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on the database");

    proxy.cut.send_replace(false);
    assert!(
        eventually(Duration::from_secs(60), || {
            let base = base.clone();
            async move { ready(&base).await == (200, json!("ready")) }
        })
        .await,
        "not ready again after the database came back"
    );
    node.shutdown().await.unwrap();
    let drop_schema = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = std::process::Command::new("psql").args([&pg_url(), "-q", "-c", &drop_schema]).output();
}
