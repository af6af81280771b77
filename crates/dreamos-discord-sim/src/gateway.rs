//! The gateway: a websocket that speaks Discord's gateway protocol (v10, JSON text frames):
//! HELLO, IDENTIFY -> READY (whose `resume_gateway_url` is this simulator), heartbeats and
//! their ACKs, RESUME -> RESUMED with the missed events replayed, and, on demand, RECONNECT
//! (op 7), INVALID_SESSION (op 9), unanswered heartbeats and close codes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_websockets::{CloseCode, Message, ServerBuilder};

/// What the test asks the open connection to do.
enum Control {
    Frame(Value),
    Close(u16),
}

#[derive(Default)]
pub(crate) struct State {
    session: Option<String>,
    sessions: u64,
    seq: u64,
    /// Dispatched events of the session, for replay on RESUME.
    events: Vec<(u64, Value)>,
    connection: Option<mpsc::UnboundedSender<Control>>,
    /// The current connection's heartbeats go unanswered.
    silent: bool,
    /// What the bot did: `identify`, `resume`, `heartbeat`, `connect`.
    pub(crate) log: Vec<String>,
}

pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) heartbeat_ms: u64,
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
}

impl Gateway {
    pub(crate) async fn start(
        heartbeat_ms: u64,
        changed: tokio::sync::watch::Sender<u64>,
    ) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gateway = Arc::new(Self {
            addr: listener.local_addr().expect("address"),
            state: Arc::default(),
            heartbeat_ms,
            changed,
        });
        let g = gateway.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    if let Ok((_request, ws)) = ServerBuilder::new().accept(stream).await {
                        g.serve(ws).await;
                    }
                });
            }
        });
        gateway
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    fn note(&self, what: &str) {
        self.state.lock().unwrap().log.push(what.to_string());
        self.changed.send_modify(|n| *n += 1);
    }

    /// Sends `event` as a dispatch of the session; kept for replay if the bot is away.
    pub(crate) fn dispatch(&self, name: &str, data: Value) {
        let mut s = self.state.lock().unwrap();
        s.seq += 1;
        let frame = json!({ "op": 0, "t": name, "s": s.seq, "d": data });
        let seq = s.seq;
        s.events.push((seq, frame.clone()));
        if let Some(c) = &s.connection {
            let _ = c.send(Control::Frame(frame));
        }
    }

    pub(crate) fn send(&self, frame: Value) {
        if let Some(c) = &self.state.lock().unwrap().connection {
            let _ = c.send(Control::Frame(frame));
        }
    }

    pub(crate) fn close(&self, code: u16) {
        if let Some(c) = &self.state.lock().unwrap().connection {
            let _ = c.send(Control::Close(code));
        }
    }

    pub(crate) fn silence_heartbeats(&self) {
        self.state.lock().unwrap().silent = true;
    }

    /// Forgets the session: a RESUME is then refused with INVALID_SESSION.
    pub(crate) fn invalidate(&self) {
        let mut s = self.state.lock().unwrap();
        s.session = None;
        s.events.clear();
    }

    async fn serve(
        self: Arc<Self>,
        mut ws: tokio_websockets::WebSocketStream<tokio::net::TcpStream>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut s = self.state.lock().unwrap();
            s.connection = Some(tx);
            s.silent = false;
        }
        self.note("connect");
        let hello = json!({ "op": 10, "d": { "heartbeat_interval": self.heartbeat_ms } });
        if ws.send(Message::text(hello.to_string())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                incoming = ws.next() => {
                    let Some(Ok(message)) = incoming else { break };
                    let Some(text) = message.as_text() else {
                        if message.is_close() { break }
                        continue;
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
                    for reply in self.answer(&frame) {
                        if ws.send(Message::text(reply.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
                control = rx.recv() => match control {
                    Some(Control::Frame(frame)) => {
                        if ws.send(Message::text(frame.to_string())).await.is_err() {
                            break;
                        }
                    }
                    Some(Control::Close(code)) => {
                        let code = CloseCode::try_from(code).unwrap_or(CloseCode::NORMAL_CLOSURE);
                        let _ = ws.send(Message::close(Some(code), "")).await;
                        break;
                    }
                    None => break,
                },
            }
        }
        self.note("disconnect");
    }

    fn answer(&self, frame: &Value) -> Vec<Value> {
        let op = frame["op"].as_u64().unwrap_or(99);
        match op {
            1 => {
                self.note("heartbeat");
                if self.state.lock().unwrap().silent { vec![] } else { vec![json!({ "op": 11 })] }
            }
            2 => {
                let mut s = self.state.lock().unwrap();
                s.sessions += 1;
                let session = format!("session-{}", s.sessions);
                s.session = Some(session.clone());
                s.events.clear();
                s.seq = 1;
                drop(s);
                self.note("identify");
                vec![json!({ "op": 0, "t": "READY", "s": 1, "d": {
                    "v": 10,
                    "user": { "id": "1100000000000000300", "username": "dreamos", "discriminator": "0", "avatar": null, "bot": true },
                    "guilds": [],
                    "session_id": session,
                    "resume_gateway_url": self.url(),
                    "application": { "id": crate::APPLICATION_ID.to_string(), "flags": 0 },
                    "shard": [0, 1],
                }})]
            }
            6 => {
                let s = self.state.lock().unwrap();
                let session_ok = s.session.as_deref() == frame["d"]["session_id"].as_str();
                let after = frame["d"]["seq"].as_u64().unwrap_or(0);
                if !session_ok {
                    drop(s);
                    self.note("resume refused");
                    return vec![json!({ "op": 9, "d": false })];
                }
                let mut out: Vec<Value> = s
                    .events
                    .iter()
                    .filter(|(seq, _)| *seq > after)
                    .map(|(_, f)| f.clone())
                    .collect();
                let seq = s.seq;
                drop(s);
                out.push(json!({ "op": 0, "t": "RESUMED", "s": seq, "d": {} }));
                self.note("resume");
                out
            }
            _ => vec![],
        }
    }
}
