//! A blocking client for the control WebSocket. A background thread keeps reading (so the
//! server's pings are answered, as a browser does) and queues the messages for the test.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Message, WebSocket};

struct Inner {
    socket: WebSocket<TcpStream>,
    inbox: VecDeque<Value>,
    closed: bool,
}

impl Inner {
    /// Reads whatever has arrived (answering pings on the way).
    fn pump(&mut self) {
        while !self.closed {
            match self.socket.read() {
                Ok(Message::Text(t)) => {
                    if let Ok(v) = serde_json::from_str(t.as_str()) {
                        self.inbox.push_back(v);
                    }
                }
                Ok(Message::Close(_)) => self.closed = true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    let _ = self.socket.flush();
                    return;
                }
                Err(_) => self.closed = true,
            }
        }
    }
}

pub struct Control {
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Control {
    pub fn connect(addr: SocketAddr, room: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        let (socket, _) = tungstenite::client(format!("ws://{addr}/ws/{room}"), stream).expect("websocket handshake");
        socket.get_ref().set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let inner = Arc::new(Mutex::new(Inner { socket, inbox: VecDeque::new(), closed: false }));
        let stop = Arc::new(AtomicBool::new(false));
        let (bg_inner, bg_stop) = (inner.clone(), stop.clone());
        std::thread::spawn(move || {
            while !bg_stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(300));
                bg_inner.lock().unwrap().pump();
            }
            let _ = bg_inner.lock().unwrap().socket.close(None);
            let _ = bg_inner.lock().unwrap().socket.flush();
        });
        Self { inner, stop }
    }

    /// Connects and joins as `name`; returns the connection, participant id and token.
    pub fn join(addr: SocketAddr, room: &str, name: &str) -> (Self, String, String) {
        Self::join_with(addr, room, serde_json::json!({"type": "join", "name": name}))
    }

    /// Joins as the room's first participant, its moderator: the connection, the token and
    /// the moderator key.
    pub fn join_first(addr: SocketAddr, room: &str, name: &str) -> (Self, String, String) {
        let mut c = Self::connect(addr, room);
        c.send_json(&serde_json::json!({"type": "join", "name": name}));
        let joined = c.expect_type("joined", Duration::from_secs(5));
        let key = joined["moderator_key"].as_str().expect("the first participant gets the moderator key").to_string();
        (c, joined["token"].as_str().expect("token").to_string(), key)
    }

    /// Waits until a `room` message says `settings[setting] == want`; panics with what the
    /// room messages said instead.
    pub fn told_setting(&mut self, setting: &str, want: bool, who: &str) {
        let within = Duration::from_secs(10);
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < within {
            let Some(v) = self.next(within.saturating_sub(start.elapsed())) else { continue };
            if v["type"] == "room" {
                if v["settings"][setting] == serde_json::json!(want) {
                    return;
                }
                seen.push(v["settings"][setting].to_string());
            }
        }
        panic!("{who} was not told {setting}={want} within {within:?}; room messages said {seen:?}");
    }

    /// Joins with a full `join` message (password, moderator key).
    pub fn join_with(addr: SocketAddr, room: &str, join: Value) -> (Self, String, String) {
        let mut c = Self::connect(addr, room);
        c.send_json(&join);
        let joined = c.expect_type("joined", Duration::from_secs(5));
        let id = joined["id"].as_str().expect("id").to_string();
        let token = joined["token"].as_str().expect("token").to_string();
        (c, id, token)
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.inner.lock().unwrap().socket.send(Message::text(text))
    }

    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).expect("send");
    }

    pub fn send_binary(&mut self, data: Vec<u8>) -> Result<(), tungstenite::Error> {
        self.inner.lock().unwrap().socket.send(Message::binary(data))
    }

    /// The next JSON message, or `None` on timeout or close.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        let start = Instant::now();
        loop {
            {
                let mut inner = self.inner.lock().unwrap();
                if let Some(v) = inner.inbox.pop_front() {
                    return Some(v);
                }
                if inner.closed {
                    return None;
                }
                inner.pump();
                if let Some(v) = inner.inbox.pop_front() {
                    return Some(v);
                }
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Skips messages until one of type `ty` arrives; panics with what came instead.
    pub fn expect_type(&mut self, ty: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < timeout {
            if let Some(v) = self.next(timeout.saturating_sub(start.elapsed())) {
                if v["type"] == ty {
                    return v;
                }
                seen.push(v["type"].to_string());
            }
        }
        panic!("no '{ty}' message within {timeout:?}; got {seen:?}");
    }

    /// Whether the server closed the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let mut inner = self.inner.lock().unwrap();
            inner.pump();
            inner.inbox.clear();
            if inner.closed {
                return true;
            }
            drop(inner);
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
