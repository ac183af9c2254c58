// Plenum's browser protocol library: the control WebSocket and WHIP/WHEP sessions.
// No DOM access here; the page (room.js) listens to events.
//
// A participant is one control WebSocket (join, chat, mute state), one WHIP session
// (camera + microphone) and one WHEP session (the room's single mixed stream, without the
// participant's own voice). Both HTTP sessions carry the token from `joined` as bearer.

const GATHER_TIMEOUT_MS = 2000;

// In a pool of nodes the room may live on another node than the one that served this page:
// its URL (from the room's info) is where the WebSocket, WHIP, WHEP and the room's API go.
// "" is this page's own server.
let base = "";
// Every other node of the pool as of the last room info: when the room's node is gone, the
// page asks these where the room is now.
let nodes = [];

/// Where a path of the room's server is.
export function at(path) {
  return base + path;
}

/// Whether this page is in a pool of nodes (the room's info named them).
export function inPool() {
  return nodes.length > 0 || base !== "";
}

/// From now on the room's server is at `url` (a node's URL; this page's origin means "").
export function moveTo(url) {
  base = !url || url === location.origin ? "" : url.replace(/\/$/, "");
}

export class Control extends EventTarget {
  constructor(room) {
    super();
    this.room = room;
    this.ws = null;
  }

  /// Opens the WebSocket and joins as `name` (with the room password, a moderator key, and
  /// the token of before a reload when given); resolves with the `joined` message, rejects
  /// with an Error carrying `code`.
  join(name, { password, moderatorKey, resume } = {}) {
    const url = new URL(at(`/ws/${encodeURIComponent(this.room)}`), location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () =>
        this.send({ type: "join", name, password: password || null, moderator_key: moderatorKey || null, resume: resume || null }),
      );
      this.ws.addEventListener("message", (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (msg.type === "joined") resolve(msg);
        if (msg.type === "error" && !this.joined) reject(Object.assign(new Error(msg.message), { code: msg.code }));
        if (msg.type === "joined") this.joined = true;
        this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      });
      this.ws.addEventListener("close", () => {
        if (!this.joined) reject(new Error("connection closed"));
        this.dispatchEvent(new Event("closed"));
      });
    });
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  chat(text) {
    this.send({ type: "chat", text });
  }

  setMedia(audioMuted, videoMuted) {
    this.send({ type: "set_media", audio_muted: audioMuted, video_muted: videoMuted });
  }

  /// What this participant's view receives: "auto", "low" (data saver) or "audio".
  setQuality(quality) {
    this.send({ type: "set_quality", quality });
  }

  leave() {
    this.send({ type: "leave" });
    this.ws?.close();
  }
}

function waitForGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

/// One WHIP or WHEP session: offer with all candidates, POST, apply the answer.
class HttpSession {
  constructor(kind, room, token, query = "") {
    this.kind = kind;
    this.room = room;
    this.token = token;
    this.query = query;
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.location = null;
  }

  async negotiate() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await waitForGathering(this.pc);
    const path = this.kind === "whip-screen"
      ? `/whip/${encodeURIComponent(this.room)}?screen=1`
      : `/${this.kind}/${encodeURIComponent(this.room)}${this.query}`;
    const response = await fetch(at(path), {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${this.token}` },
      body: this.pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      throw new Error(`${this.kind}: ${response.status} ${(await response.text()).trim()}`);
    }
    this.location = response.headers.get("Location");
    await this.pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  }

  /// Ends the session; `tell: false` when the server ended it already (a `bye`): asking it
  /// to end a session it no longer has would only fail.
  async close({ tell = true } = {}) {
    const location = this.location;
    this.location = null;
    this.pc.close();
    if (location && tell) {
      try {
        await fetch(location, { method: "DELETE", keepalive: true });
      } catch {
        // The server ends the session by itself when nothing arrives.
      }
    }
  }
}

/// Sends the local camera and microphone (either may be absent), or a shared screen.
export async function publish(room, token, stream, { screen = false } = {}) {
  const session = new HttpSession(screen ? "whip-screen" : "whip", room, token);
  for (const track of stream.getTracks()) {
    session.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  }
  await session.negotiate();
  return session;
}

/// Receives the room's mix; `onStream` gets a MediaStream with its video and audio. `quality`
/// ("auto", "low", "audio") picks the rung of the server's encoding ladder to start on.
export async function view(room, token, onStream, quality = "auto") {
  const query = quality && quality !== "auto" ? `?quality=${encodeURIComponent(quality)}` : "";
  const session = new HttpSession("whep", room, token, query);
  session.pc.addTransceiver("video", { direction: "recvonly" });
  session.pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  session.pc.addEventListener("track", (ev) => {
    stream.addTrack(ev.track);
    onStream(stream);
  });
  await session.negotiate();
  return session;
}

/// The video this session receives (from getStats): its height now and frames decoded so far.
export async function receivedVideo(session) {
  const stats = await session.pc.getStats().catch(() => new Map());
  for (const s of stats.values()) {
    if (s.type === "inbound-rtp" && s.kind === "video") return { height: s.frameHeight || 0, frames: s.framesDecoded || 0 };
  }
  return { height: 0, frames: 0 };
}

/// The room's info as `server` ("" or a node's URL) answers it, or null (no answer in 3 s).
async function askInfo(server, room) {
  try {
    const response = await fetch(`${server}/api/rooms/${encodeURIComponent(room)}`, { cache: "no-store", signal: AbortSignal.timeout(3000) });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/// What anyone may know about a room before joining (password? presentation running?). In a
/// pool: asked of the node that hosts the room, which from then on is the room's server.
export async function roomInfo(room) {
  return (await findRoom(room, [base])) ?? {};
}

/// Asks `servers` in turn (then this page's server and the pool's other nodes) where the room
/// lives now, and moves there: the room's info from its node, or null if none answered (a
/// node that is gone has its rooms opened again elsewhere when they are asked for).
export async function findRoom(room, servers = []) {
  for (const server of [...new Set([...servers, "", ...nodes])]) {
    let info = await askInfo(server, room);
    if (!info) continue;
    if (info.nodes) nodes = info.nodes.filter((n) => n !== location.origin);
    const home = info.node?.url;
    if (home && home !== (server || location.origin)) {
      info = await askInfo(home === location.origin ? "" : home, room);
      if (!info) continue;
    }
    moveTo(home);
    return info;
  }
  return null;
}

/// Room names as the server accepts them.
export function validRoomName(name) {
  return /^[a-z0-9_-]{1,64}$/.test(name);
}
