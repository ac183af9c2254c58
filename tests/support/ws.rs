//! A blocking client for the control WebSocket.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Message, WebSocket};

pub struct Control {
    socket: WebSocket<TcpStream>,
}

impl Control {
    pub fn connect(addr: SocketAddr, room: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let (socket, _) = tungstenite::client(format!("ws://{addr}/ws/{room}"), stream).expect("websocket handshake");
        Self { socket }
    }

    /// Connects and joins as `name`; returns the connection, participant id and token.
    pub fn join(addr: SocketAddr, room: &str, name: &str) -> (Self, String, String) {
        Self::join_with(addr, room, serde_json::json!({"type": "join", "name": name}))
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
        self.socket.send(Message::text(text))
    }

    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).expect("send");
    }

    pub fn send_binary(&mut self, data: Vec<u8>) -> Result<(), tungstenite::Error> {
        self.socket.send(Message::binary(data))
    }

    /// The next JSON message, or `None` on timeout or close.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            match self.socket.read() {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Message::Close(_)) => return None,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
        None
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
            match self.socket.read() {
                Ok(Message::Close(_)) => return true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}
