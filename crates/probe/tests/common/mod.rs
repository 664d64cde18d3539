//! Test support: a local HTTP target that counts what reaches it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// What the target has seen.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU64,
    /// Client addresses that sent at least one request: one per TCP connection used.
    pub connections: Mutex<HashSet<SocketAddr>>,
    pub methods: Mutex<Vec<Method>>,
}

/// An axum server on `127.0.0.1:0`:
///
/// - `/hits` answers the request count; `/paced` the same after 2 ms;
/// - `/slow` answers after 5 s; `/unavailable` is a 503;
/// - `/same` redirects to `/hits` on this host; `/loop` redirects to itself;
/// - `/away` redirects to `away` (another server), when set.
pub struct Target {
    pub port: u16,
    pub seen: Arc<Seen>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Seen>,
    away: Option<String>,
}

impl Target {
    pub async fn start() -> Target {
        Target::start_redirecting(None).await
    }

    /// A target whose `/away` redirects to `away`.
    pub async fn start_redirecting(away: Option<String>) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new().fallback(answer).with_state(Shared { seen: seen.clone(), away });
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
        });
        Target { port, seen }
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.lock().unwrap().len()
    }
}

async fn answer(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
) -> Response {
    let n = shared.seen.requests.fetch_add(1, Ordering::SeqCst) + 1;
    shared.seen.connections.lock().unwrap().insert(peer);
    shared.seen.methods.lock().unwrap().push(method);
    let redirect = |to: String| (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
    match uri.path() {
        "/hits" => n.to_string().into_response(),
        "/paced" => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            n.to_string().into_response()
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            n.to_string().into_response()
        }
        "/unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "dynamodb store unavailable").into_response(),
        "/same" => redirect("/hits".into()),
        "/loop" => redirect("/loop".into()),
        "/away" => match shared.away {
            Some(to) => redirect(to),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A spec from a JSON event; panics (in tests) if it does not validate.
pub fn spec(event: serde_json::Value) -> probe::Spec {
    probe::Spec::from_event(event.clone()).unwrap_or_else(|e| panic!("{event}: {e}"))
}
