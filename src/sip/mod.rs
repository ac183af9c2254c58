//! Dial-in by phone (`--sip-listen`): a SIP endpoint (UDP and TCP, through `rsipstack`'s
//! transactions and dialogs) that answers calls, takes the room's dial-in PIN by DTMF and
//! lets the caller into the room as a participant without a picture.
//!
//! - [`sdp`]: the caller's offer, the codec picked, the answer (pure);
//! - [`keys`]: telephone-events, the PIN entry, `*6` (pure);
//! - [`tones`]: the signals a caller hears from Plenum itself;
//! - [`call`]: a call's own media pipeline, converting at the edge to the room's 48 kHz;
//! - [`session`]: a call's life (PIN, waiting room, the room, the end);
//! - here: the endpoint, what reaches it, and who may call how often.
//!
//! A caller's number is personal: it is never logged or shown, only its last two digits
//! name the caller in the room ("Telefon …23").

pub mod call;
pub mod keys;
pub mod prompts;
pub mod sdp;
mod session;
pub mod tones;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::DialogId;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{TcpListenerConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SipConfig;
use crate::ids::RoomId;
use crate::rooms::Rooms;

/// Calls this node takes at once.
const MAX_CALLS: usize = 200;
/// Calls one source address may have at once (a PBX or trunk brings many callers: it is one
/// source; raise with care).
const CALLS_PER_SOURCE: usize = 30;
/// New calls per source: a burst of this many, then one per [`REFILL`].
const BURST: f64 = 10.0;
const REFILL: Duration = Duration::from_millis(500);
/// Sources remembered for rate limiting (the oldest are forgotten first).
const SOURCES_KEPT: usize = 10_000;

/// The dial-in PIN of `room`: eight digits derived from the node's secret and the room's
/// name, the same on every node given the same secret, and for as long as it is kept.
pub fn room_pin(secret: &str, room: &RoomId) -> String {
    let digest = Blake2s256::new().chain_update(secret.as_bytes()).chain_update([0]).chain_update(room.as_str().as_bytes()).finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&digest[..8]);
    format!("{:08}", u64::from_le_bytes(n) % 100_000_000)
}

/// What a call's dialog tells its session.
#[derive(Debug)]
enum Signal {
    /// A key sent as SIP INFO.
    Key(char),
    /// The dialog ended (the caller's BYE, a CANCEL, a timeout, our own BYE).
    Ended,
}

/// A source's allowance of new calls (a token bucket) and its calls now.
struct Source {
    tokens: f64,
    at: Instant,
    calls: usize,
}

pub struct Sip {
    cfg: SipConfig,
    rooms: Arc<Rooms>,
    dialogs: Arc<DialogLayer>,
    /// Each running call's dialog, to its session.
    calls: Mutex<HashMap<DialogId, mpsc::UnboundedSender<Signal>>>,
    sources: Mutex<HashMap<IpAddr, Source>>,
    /// Cancelled when the server stops: every call says goodbye (BYE).
    stop: CancellationToken,
    /// The spoken prompts, once espeak-ng made them (tone signals until then, or without it).
    prompts: std::sync::OnceLock<prompts::Prompts>,
    tones: prompts::Prompts,
}

/// The SIP side of the server, running.
pub struct SipHandle {
    sip: Arc<Sip>,
    token: CancellationToken,
    /// The registration with a trunk, and what ends it (before the endpoint: it unregisters).
    registration: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
}

impl SipHandle {
    /// Ends every call with a BYE (waits up to two seconds for them), then the endpoint.
    pub async fn shutdown(self) {
        self.sip.stop.cancel();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.sip.active() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((task, stop)) = self.registration {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.token.cancel();
    }
}

/// Starts the endpoint on `cfg.listen` (UDP and TCP).
pub async fn start(cfg: SipConfig, rooms: Arc<Rooms>) -> anyhow::Result<SipHandle> {
    let token = CancellationToken::new();
    let transports = TransportLayer::new(token.child_token());
    let public = SocketAddr::new(cfg.address, cfg.listen.port());
    let udp = UdpConnection::create_connection(cfg.listen, Some(public), Some(token.child_token()))
        .await
        .map_err(|e| anyhow::anyhow!("SIP on UDP {}: {e}", cfg.listen))?;
    transports.add_transport(udp.into());
    // Bound when the endpoint serves; checked here first so that a taken port is a start-up error.
    drop(std::net::TcpListener::bind(cfg.listen).map_err(|e| anyhow::anyhow!("SIP on TCP {}: {e}", cfg.listen))?);
    let tcp = TcpListenerConnection::new(cfg.listen, Some(public)).await.map_err(|e| anyhow::anyhow!("SIP on TCP {}: {e}", cfg.listen))?;
    transports.add_transport(tcp.into());
    let endpoint = EndpointBuilder::new()
        .with_user_agent(concat!("Plenum/", env!("CARGO_PKG_VERSION")))
        .with_cancel_token(token.child_token())
        .with_transport_layer(transports)
        .build();
    let incoming = endpoint.incoming_transactions().map_err(|e| anyhow::anyhow!("SIP endpoint: {e}"))?;
    let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
    let (states_tx, states_rx) = dialogs.new_dialog_state_channel();
    let sip = Arc::new(Sip {
        cfg,
        rooms,
        dialogs,
        calls: Mutex::default(),
        sources: Mutex::default(),
        stop: CancellationToken::new(),
        prompts: std::sync::OnceLock::new(),
        tones: prompts::Prompts::tones(),
    });
    let speaker = sip.clone();
    tokio::task::spawn_blocking(move || {
        let _ = speaker.prompts.set(prompts::Prompts::make());
    });
    let inner = endpoint.inner.clone();
    tokio::spawn(async move { endpoint.serve().await });
    let registration = sip.cfg.registrar.clone().map(|registrar| {
        let stop = CancellationToken::new();
        (tokio::spawn(register(inner, registrar, stop.clone())), stop)
    });
    tokio::spawn(sip.clone().take_requests(incoming, states_tx));
    tokio::spawn(sip.clone().follow_dialogs(states_rx));
    tracing::info!(listen = %sip.cfg.listen, "taking phone calls (SIP over UDP and TCP)");
    Ok(SipHandle { sip, token, registration })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sip {
    /// What callers are told: spoken once espeak-ng has made it, tone signals until then.
    fn prompts(&self) -> &prompts::Prompts {
        self.prompts.get().unwrap_or(&self.tones)
    }

    fn active(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Every request from outside: new calls, requests inside calls, the rest answered.
    async fn take_requests(self: Arc<Self>, mut incoming: rsipstack::transaction::TransactionReceiver, states: DialogStateSender) {
        while let Some(mut tx) = incoming.recv().await {
            let in_dialog = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
            if in_dialog {
                match self.dialogs.match_dialog(&tx) {
                    Some(mut dialog) => {
                        tokio::spawn(async move { dialog.handle(&mut tx).await });
                    }
                    None => {
                        tokio::spawn(async move { tx.reply(StatusCode::CallTransactionDoesNotExist).await });
                    }
                }
                continue;
            }
            match tx.original.method {
                Method::Invite => self.clone().invite(tx, states.clone()),
                Method::Options => {
                    tokio::spawn(async move {
                        tx.reply_with(StatusCode::OK, vec![Header::Allow("INVITE, ACK, CANCEL, BYE, OPTIONS, INFO".into())], None).await
                    });
                }
                Method::Ack => {}
                _ => {
                    tokio::spawn(async move { tx.reply(StatusCode::MethodNotAllowed).await });
                }
            }
        }
    }

    /// Whether `source` may start another call now; counts it if so.
    fn admit_source(&self, source: IpAddr) -> Result<(), &'static str> {
        if self.active() >= MAX_CALLS {
            return Err("this node takes no more calls now");
        }
        let mut sources = lock(&self.sources);
        if sources.len() >= SOURCES_KEPT && !sources.contains_key(&source) {
            let idle: Vec<IpAddr> = sources.iter().filter(|(_, s)| s.calls == 0).map(|(ip, _)| *ip).collect();
            for ip in idle {
                sources.remove(&ip);
            }
        }
        let now = Instant::now();
        let s = sources.entry(source).or_insert(Source { tokens: BURST, at: now, calls: 0 });
        s.tokens = (s.tokens + now.duration_since(s.at).as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
        s.at = now;
        if s.calls >= CALLS_PER_SOURCE {
            return Err("too many calls from this source");
        }
        if s.tokens < 1.0 {
            return Err("too many new calls from this source");
        }
        s.tokens -= 1.0;
        s.calls += 1;
        Ok(())
    }

    fn call_ended(&self, source: IpAddr, dialog: &DialogId) {
        if lock(&self.calls).remove(dialog).is_some() {
            crate::metrics::metrics().phone_calls.dec();
        }
        self.release_source(source);
    }

    fn release_source(&self, source: IpAddr) {
        if let Some(s) = lock(&self.sources).get_mut(&source) {
            s.calls = s.calls.saturating_sub(1);
        }
    }

    /// A new call: answered with the codec picked from its offer, or refused with a reason.
    fn invite(self: Arc<Self>, mut tx: Transaction, states: DialogStateSender) {
        let source = tx.connection.as_ref().and_then(|c| c.get_remote_addr()).and_then(|a| a.get_socketaddr().ok()).map(|a| a.ip());
        let Some(source) = source else {
            tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await });
            return;
        };
        let offer = match sdp::read_offer(&String::from_utf8_lossy(&tx.original.body)) {
            Ok(offer) => offer,
            Err(e) => {
                tracing::debug!(error = %e, "a call's offer was refused");
                let code = if e.not_acceptable() { StatusCode::NotAcceptableHere } else { StatusCode::BadRequest };
                tokio::spawn(async move { tx.reply(code).await });
                return;
            }
        };
        if let Err(why) = self.admit_source(source) {
            crate::metrics::metrics().phone_calls_refused.inc();
            tracing::info!(reason = why, "a call was refused");
            tokio::spawn(async move { tx.reply(StatusCode::BusyHere).await });
            return;
        }
        let name = caller_name(&tx);
        let (keys_tx, keys_rx) = mpsc::unbounded_channel();
        let media = match call::CallMedia::start("call", &offer, self.cfg.address, self.cfg.rtp_ports, keys_tx.clone()) {
            Ok(media) => media,
            Err(e) => {
                tracing::warn!(error = %e, "a call's media did not start");
                self.release_source(source);
                tokio::spawn(async move { tx.reply(StatusCode::ServerInternalError).await });
                return;
            }
        };
        let transport_tcp = tx.connection.as_ref().is_some_and(|c| c.get_addr().r#type == Some(rsipstack::sip::Transport::Tcp));
        let contact = format!("sip:plenum@{}{}", SocketAddr::new(self.cfg.address, self.cfg.listen.port()), if transport_tcp { ";transport=tcp" } else { "" });
        let contact = rsipstack::sip::Uri::try_from(contact.as_str()).ok();
        let mut dialog = match self.dialogs.get_or_create_server_invite(&tx, states, None, contact) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "a call could not start its dialog");
                self.release_source(source);
                tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await });
                return;
            }
        };
        let answer = sdp::answer(&offer, self.cfg.address, media.port, rand_session());
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        lock(&self.calls).insert(dialog.id(), signals_tx);
        crate::metrics::metrics().phone_calls.inc();
        let control = dialog.clone();
        tokio::spawn(async move { dialog.handle(&mut tx).await });
        if let Err(e) = control.accept(Some(vec![Header::ContentType("application/sdp".into())]), Some(answer.into_bytes())) {
            tracing::warn!(error = %e, "a call could not be answered");
        }
        tracing::info!(codec = offer.codec.name(), "phone call answered");
        tokio::spawn(session::run(self, control, media, keys_rx, signals_rx, name, source));
    }

    /// What the dialogs report: keys sent as INFO, re-INVITEs, ends.
    async fn follow_dialogs(self: Arc<Self>, mut states: DialogStateReceiver) {
        while let Some(state) = states.recv().await {
            match state {
                DialogState::Info(id, request, handle) => {
                    let body = String::from_utf8_lossy(&request.body);
                    let key = keys::key_of_info(&body);
                    let sent = key.and_then(|k| lock(&self.calls).get(&id).map(|tx| tx.send(Signal::Key(k)).is_ok()));
                    let code = match (key, sent) {
                        (Some(_), Some(true)) => StatusCode::OK,
                        (None, _) => StatusCode::BadRequest,
                        _ => StatusCode::CallTransactionDoesNotExist,
                    };
                    let _ = handle.reply(code).await;
                }
                DialogState::Updated(_, _, handle) => {
                    // A re-INVITE (session refresh, hold): the call goes on as it is.
                    let _ = handle.reply(StatusCode::OK).await;
                }
                DialogState::Options(_, _, handle) | DialogState::Message(_, _, handle) | DialogState::Notify(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                DialogState::Refer(_, _, handle) => {
                    let _ = handle.reply(StatusCode::Forbidden).await;
                }
                DialogState::Terminated(id, _) => {
                    if let Some(tx) = lock(&self.calls).get(&id) {
                        let _ = tx.send(Signal::Ended);
                    }
                    self.dialogs.remove_dialog(&id);
                }
                _ => {}
            }
        }
    }
}

/// Registers with the trunk or PBX and keeps the registration fresh (at three quarters of
/// what the registrar grants; tried again with back-off when it fails) until the server
/// stops, then takes it back.
async fn register(endpoint: rsipstack::transaction::endpoint::EndpointInnerRef, registrar: crate::config::Registrar, token: CancellationToken) {
    use rsipstack::dialog::authenticate::Credential;
    use rsipstack::dialog::registration::{RefreshOutcome, Registration};
    let Ok(uri) = rsipstack::sip::Uri::try_from(registrar.uri.as_str()) else {
        tracing::warn!("the SIP registrar's URI does not parse: not registering");
        return;
    };
    let credential = Credential { username: registrar.user.clone(), password: registrar.password.clone(), ..Default::default() };
    let mut registration = Registration::new(endpoint, Some(credential));
    let mut registered = false;
    registration
        .keep_alive(uri.clone(), 300, token.clone(), |outcome| match outcome {
            RefreshOutcome::Registered(_) => {
                if !registered {
                    tracing::info!(registrar = %registrar.uri, "registered with the SIP registrar");
                }
                registered = true;
            }
            RefreshOutcome::Rejected(response) => {
                registered = false;
                tracing::warn!(registrar = %registrar.uri, status = %response.status_code, "the SIP registrar refused the registration");
            }
            RefreshOutcome::Failed(e) => {
                registered = false;
                tracing::warn!(registrar = %registrar.uri, error = %e, "the SIP registrar was not reached");
            }
        })
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), registration.register(uri, Some(0))).await;
}

/// "Telefon …23": the caller's last two digits, never the number.
fn caller_name(tx: &Transaction) -> String {
    let user = tx.original.from_header().ok().and_then(|f| f.uri().ok()).and_then(|u| u.user().map(str::to_owned)).unwrap_or_default();
    let digits: String = user.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 4 {
        format!("Telefon …{}", &digits[digits.len() - 2..])
    } else {
        "Telefon".into()
    }
}

fn rand_session() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) >> 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_eight_digits_per_room_and_secret() {
        let (a, b) = (RoomId::parse("rat").unwrap(), RoomId::parse("schule").unwrap());
        let pin = room_pin("a secret of sixteen", &a);
        assert_eq!(pin.len(), 8);
        assert!(pin.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(pin, room_pin("a secret of sixteen", &a), "stable");
        assert_ne!(pin, room_pin("a secret of sixteen", &b));
        assert_ne!(pin, room_pin("another secret here", &a));
    }
}
