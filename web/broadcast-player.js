// Plenum's own HLS player, for browsers without HLS playback of their own (Firefox, older
// Chromium): it reads the live playlist, turns each MPEG-TS segment (H.264 + ADTS AAC, as
// Plenum's broadcast sends them) into fragmented MP4 and hands that to Media Source
// Extensions. It knows exactly what Plenum serves, no more: one program, one H.264 and one
// AAC stream. `Transmuxer` has no browser dependencies (the tests run it in node too).

const TS = 188;
const CLOCK = 90000;
const WRAP = 2 ** 33;

// ---------------------------------------------------------------------------------------------
// MPEG-TS

/// The PES packets of a segment's H.264 and AAC streams, in order: `{ video: [{pts, dts,
/// data}], audio: [{pts, data}] }`.
export function demux(bytes) {
  const ids = { pmt: -1, video: -1, audio: -1 };
  const open = new Map();
  const out = { video: [], audio: [] };
  const close = (pid) => {
    const chunks = open.get(pid);
    open.delete(pid);
    const pes = chunks && parsePes(concat(chunks));
    if (!pes) return;
    if (pid === ids.video) out.video.push(pes);
    else out.audio.push(pes);
  };
  for (let i = bytes.indexOf(0x47); i >= 0 && i + TS <= bytes.length; i += TS) {
    if (bytes[i] !== 0x47) throw new Error("MPEG-TS lost its sync");
    const start = (bytes[i + 1] & 0x40) !== 0;
    const pid = ((bytes[i + 1] & 0x1f) << 8) | bytes[i + 2];
    const control = (bytes[i + 3] >> 4) & 3;
    let p = i + 4;
    if (control & 2) p += 1 + bytes[p];
    if (!(control & 1) || p >= i + TS) continue;
    const payload = bytes.subarray(p, i + TS);
    if (pid === 0 && start) ids.pmt = patProgramMap(payload);
    else if (pid === ids.pmt && start) Object.assign(ids, pmtStreams(payload));
    else if (pid === ids.video || pid === ids.audio) {
      if (start) {
        close(pid);
        open.set(pid, [payload]);
      } else if (open.has(pid)) open.get(pid).push(payload);
    }
  }
  close(ids.video);
  close(ids.audio);
  return out;
}

/// The PID of the first program's map.
function patProgramMap(payload) {
  const s = payload.subarray(1 + payload[0]);
  const end = Math.min(s.length, 3 + (((s[1] & 0x0f) << 8) | s[2]) - 4);
  for (let p = 8; p + 4 <= end; p += 4) {
    if (((s[p] << 8) | s[p + 1]) !== 0) return ((s[p + 2] & 0x1f) << 8) | s[p + 3];
  }
  return -1;
}

/// The PIDs of the program's H.264 (stream type 0x1b) and AAC (0x0f) streams.
function pmtStreams(payload) {
  const s = payload.subarray(1 + payload[0]);
  const end = Math.min(s.length, 3 + (((s[1] & 0x0f) << 8) | s[2]) - 4);
  const found = {};
  for (let p = 12 + (((s[10] & 0x0f) << 8) | s[11]); p + 5 <= end; p += 5 + (((s[p + 3] & 0x0f) << 8) | s[p + 4])) {
    const pid = ((s[p + 1] & 0x1f) << 8) | s[p + 2];
    if (s[p] === 0x1b && found.video === undefined) found.video = pid;
    if (s[p] === 0x0f && found.audio === undefined) found.audio = pid;
  }
  return found;
}

function parsePes(b) {
  if (b.length < 9 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1) return null;
  const flags = b[7] >> 6;
  if (!(flags & 2)) return null;
  const pts = timestamp(b, 9);
  const dts = flags === 3 ? timestamp(b, 14) : pts;
  return { pts, dts, data: b.subarray(9 + b[8]) };
}

/// A 33-bit PES timestamp (kept below 2^53 by plain arithmetic).
function timestamp(b, at) {
  return (b[at] & 0x0e) * 2 ** 29 + b[at + 1] * 2 ** 22 + (b[at + 2] & 0xfe) * 2 ** 14 + b[at + 3] * 2 ** 7 + (b[at + 4] >> 1);
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// H.264 and AAC

/// The NAL units of an Annex B access unit.
export function nalUnits(data) {
  const units = [];
  let start = -1;
  for (let i = 0; i + 2 < data.length; ) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) units.push(trimZeros(data.subarray(start, i)));
      i += 3;
      start = i;
    } else i++;
  }
  if (start >= 0 && start < data.length) units.push(data.subarray(start));
  return units.filter((u) => u.length > 0);
}

function trimZeros(u) {
  let end = u.length;
  while (end > 0 && u[end - 1] === 0) end--;
  return u.subarray(0, end);
}

/// Width and height that a sequence parameter set (a NAL unit with its header) describes.
export function spsSize(sps) {
  const r = new Bits(unescape(sps.subarray(1)));
  const profile = r.bits(8);
  r.bits(16);
  r.ue();
  let chroma = 1;
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.bits(1);
    r.ue();
    r.ue();
    r.bits(1);
    if (r.bits(1)) {
      for (let i = 0; i < (chroma !== 3 ? 8 : 12); i++) if (r.bits(1)) skipScalingList(r, i < 6 ? 16 : 64);
    }
  }
  r.ue();
  const poc = r.ue();
  if (poc === 0) r.ue();
  else if (poc === 1) {
    r.bits(1);
    r.se();
    r.se();
    for (let n = r.ue(); n > 0; n--) r.se();
  }
  r.ue();
  r.bits(1);
  const widthMbs = r.ue() + 1;
  const heightUnits = r.ue() + 1;
  const frameMbsOnly = r.bits(1);
  if (!frameMbsOnly) r.bits(1);
  r.bits(1);
  let crop = [0, 0, 0, 0];
  if (r.bits(1)) crop = [r.ue(), r.ue(), r.ue(), r.ue()];
  const cropX = chroma === 0 || chroma === 3 ? 1 : 2;
  const cropY = (chroma === 0 || chroma !== 1 ? 1 : 2) * (2 - frameMbsOnly);
  return {
    width: widthMbs * 16 - (crop[0] + crop[1]) * cropX,
    height: (2 - frameMbsOnly) * heightUnits * 16 - (crop[2] + crop[3]) * cropY,
  };
}

function skipScalingList(r, size) {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/// A NAL unit's payload without its emulation prevention bytes (00 00 03).
function unescape(b) {
  const out = [];
  let zeroRun = 0;
  for (const byte of b) {
    if (zeroRun >= 2 && byte === 3) {
      zeroRun = 0;
      continue;
    }
    out.push(byte);
    zeroRun = byte === 0 ? zeroRun + 1 : 0;
  }
  return Uint8Array.from(out);
}

class Bits {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0;
  }
  bits(n) {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.bytes[this.at >> 3];
      if (byte === undefined) throw new Error("H.264 parameter set ends early");
      v = v * 2 + ((byte >> (7 - (this.at & 7))) & 1);
      this.at++;
    }
    return v;
  }
  ue() {
    let zeros = 0;
    while (this.bits(1) === 0) if (++zeros > 31) throw new Error("bad H.264 parameter set");
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se() {
    const v = this.ue();
    return v & 1 ? (v + 1) / 2 : -v / 2;
  }
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// The raw AAC frames of a PES packet's ADTS frames, with the stream's configuration.
export function adtsFrames(data) {
  const frames = [];
  let config = null;
  for (let i = 0; i + 7 <= data.length; ) {
    if (data[i] !== 0xff || (data[i + 1] & 0xf0) !== 0xf0) {
      i++;
      continue;
    }
    const header = data[i + 1] & 1 ? 7 : 9;
    const length = ((data[i + 3] & 3) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5);
    if (length < header || i + length > data.length) break;
    config ??= {
      objectType: ((data[i + 2] >> 6) & 3) + 1,
      rateIndex: (data[i + 2] >> 2) & 0x0f,
      channels: ((data[i + 2] & 1) << 2) | (data[i + 3] >> 6),
    };
    frames.push({ data: data.subarray(i + header, i + length), samples: 1024 * ((data[i + 6] & 3) + 1) });
    i += length;
  }
  if (config) config.rate = AAC_RATES[config.rateIndex] ?? 48000;
  return { config, frames };
}

// ---------------------------------------------------------------------------------------------
// Fragmented MP4

function box(type, ...parts) {
  const body = concat(parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p))));
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  return out;
}

const u16 = (n) => [(n >>> 8) & 0xff, n & 0xff];
const u32 = (n) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const u64 = (n) => [...u32(Math.floor(n / 2 ** 32)), ...u32(n % 2 ** 32)];
const zeros = (n) => new Array(n).fill(0);
const MATRIX = [...u32(0x10000), ...zeros(12), ...u32(0x10000), ...zeros(12), ...u32(0x40000000)];

/// `ftyp` and `moov` for the tracks: `{ id, kind: "video", sps, pps, width, height }` and
/// `{ id, kind: "audio", config }`.
export function initSegment(tracks) {
  const ftyp = box("ftyp", [..."isom"].map((c) => c.charCodeAt(0)), u32(1), ...["isom", "iso6", "avc1", "mp41"].map((b) => [...b].map((c) => c.charCodeAt(0))));
  const mvhd = box("mvhd", zeros(12), u32(1000), u32(0), u32(0x10000), u16(0x100), zeros(10), MATRIX, zeros(24), u32(0xffffffff));
  const mvex = box("mvex", ...tracks.map((t) => box("trex", zeros(4), u32(t.id), u32(1), zeros(12))));
  return concat([ftyp, box("moov", mvhd, ...tracks.map(trak), mvex)]);
}

function trak(t) {
  const video = t.kind === "video";
  const tkhd = box("tkhd", u32(3), zeros(8), u32(t.id), zeros(4), u32(0), zeros(8), zeros(4), u16(video ? 0 : 0x100), zeros(2), MATRIX,
    u32(video ? t.width * 0x10000 : 0), u32(video ? t.height * 0x10000 : 0));
  const mdhd = box("mdhd", zeros(12), u32(video ? CLOCK : t.config.rate), u32(0), u16(0x55c4), zeros(2));
  const name = video ? "Plenum video" : "Plenum sound";
  const hdlr = box("hdlr", zeros(8), [...(video ? "vide" : "soun")].map((c) => c.charCodeAt(0)), zeros(12), [...name].map((c) => c.charCodeAt(0)), [0]);
  const header = video ? box("vmhd", u32(1), zeros(8)) : box("smhd", zeros(8));
  const dinf = box("dinf", box("dref", zeros(4), u32(1), box("url ", u32(1))));
  const empty = (type) => box(type, zeros(8));
  const stbl = box("stbl", box("stsd", zeros(4), u32(1), video ? avc1(t) : mp4a(t)), empty("stts"), empty("stsc"), box("stsz", zeros(12)), empty("stco"));
  return box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", header, dinf, stbl)));
}

function avc1(t) {
  const avcC = box("avcC", [1, t.sps[1], t.sps[2], t.sps[3], 0xff, 0xe1], u16(t.sps.length), t.sps, [1], u16(t.pps.length), t.pps);
  return box("avc1", zeros(6), u16(1), zeros(16), u16(t.width), u16(t.height), u32(0x480000), u32(0x480000), zeros(4), u16(1), zeros(32), u16(0x18), u16(0xffff), avcC);
}

function mp4a(t) {
  const { objectType, rateIndex, channels, rate } = t.config;
  const asc = [(objectType << 3) | (rateIndex >> 1), ((rateIndex & 1) << 7) | (channels << 3)];
  const decoderConfig = [0x04, 17, 0x40, 0x15, ...zeros(3), ...zeros(8), 0x05, 2, ...asc];
  const esds = box("esds", zeros(4), [0x03, 25, ...u16(t.id), 0, ...decoderConfig, 0x06, 1, 0x02]);
  return box("mp4a", zeros(6), u16(1), zeros(8), u16(channels || 2), u16(16), zeros(4), u32(rate * 0x10000), esds);
}

/// One `moof` + `mdat` with a track's samples: `{ duration, data, key, offset }`.
export function fragment(sequence, trackId, decodeTime, samples) {
  const entries = samples.flatMap((s) => [...u32(s.duration), ...u32(s.data.length), ...u32(s.key ? 0x02000000 : 0x01010000), ...u32(s.offset ?? 0)]);
  const trun = box("trun", u32(0xf01), u32(samples.length), u32(0), entries);
  const traf = box("traf", box("tfhd", u32(0x20000), u32(trackId)), box("tfdt", u32(0x01000000), u64(decodeTime)), trun);
  const moof = box("moof", box("mfhd", zeros(4), u32(sequence)), traf);
  new DataView(moof.buffer).setUint32(moof.length - 16 * samples.length - 4, moof.length + 8);
  return concat([moof, box("mdat", ...samples.map((s) => s.data))]);
}

// ---------------------------------------------------------------------------------------------
// Segments to fragments

const VIDEO_TRACK = 1;
const AUDIO_TRACK = 2;

/// Turns one broadcast's consecutive MPEG-TS segments into fragmented MP4. `push(segment)`
/// gives `{ init, media, codecs }`: `init` is set when the tracks are first known or change.
export class Transmuxer {
  constructor() {
    this.base = null;
    this.last = null;
    this.sequence = 0;
    this.video = null;
    this.audio = null;
    this.frameDuration = 3000;
  }

  push(segment) {
    const { video, audio } = demux(segment);
    const samples = video.map((pes) => this.videoSample(pes)).filter(Boolean);
    const sound = audio.map((pes) => ({ pes, ...adtsFrames(pes.data) })).filter((a) => a.config);
    const init = this.tracksChanged(samples, sound) ? initSegment(this.tracks()) : null;
    if (this.base === null) {
      const first = [samples[0]?.dts, sound[0]?.pes.pts].filter((t) => t !== undefined);
      if (!first.length) return { init, media: new Uint8Array(0), codecs: this.codecs() };
      this.base = Math.min(...first);
      this.last = this.base;
    }
    const media = [];
    if (this.video && samples.length) media.push(this.videoFragment(samples));
    if (this.audio && sound.length) media.push(this.audioFragment(sound));
    return { init, media: concat(media), codecs: this.codecs() };
  }

  videoSample(pes) {
    const units = nalUnits(pes.data);
    const keep = [];
    let key = false;
    for (const u of units) {
      const type = u[0] & 0x1f;
      if (type === 7) this.sps = u;
      else if (type === 8) this.pps = u;
      else if (type !== 9) {
        if (type === 5) key = true;
        keep.push(Uint8Array.from([...u32(u.length)]), u);
      }
    }
    if (!keep.length) return null;
    return { pts: pes.pts, dts: pes.dts, key, data: concat(keep) };
  }

  /// Whether the parameter sets or the sound's configuration differ from the last init segment.
  tracksChanged(samples, sound) {
    let changed = false;
    if (samples.length && this.sps && this.pps && (!this.video || !same(this.video.sps, this.sps) || !same(this.video.pps, this.pps))) {
      this.video = { id: VIDEO_TRACK, kind: "video", sps: this.sps, pps: this.pps, ...spsSize(this.sps) };
      changed = true;
    }
    const config = sound[0]?.config;
    if (config && (!this.audio || JSON.stringify(this.audio.config) !== JSON.stringify(config))) {
      this.audio = { id: AUDIO_TRACK, kind: "audio", config };
      changed = true;
    }
    return changed;
  }

  tracks() {
    return [this.video, this.audio].filter(Boolean);
  }

  codecs() {
    const hex = (n) => n.toString(16).padStart(2, "0");
    const c = [];
    if (this.video) c.push(`avc1.${hex(this.video.sps[1])}${hex(this.video.sps[2])}${hex(this.video.sps[3])}`);
    if (this.audio) c.push(`mp4a.40.${this.audio.config.objectType}`);
    return c.join(", ");
  }

  /// A timestamp on this transmuxer's timeline (90 kHz from the first one), across the 33-bit wrap.
  time(t) {
    while (t < this.last - WRAP / 2) t += WRAP;
    while (t > this.last + WRAP / 2) t -= WRAP;
    this.last = t;
    return t - this.base;
  }

  videoFragment(samples) {
    const times = samples.map((s) => ({ dts: this.time(s.dts), pts: this.time(s.pts) }));
    const out = samples.map((s, i) => {
      const duration = i + 1 < samples.length ? times[i + 1].dts - times[i].dts : this.frameDuration;
      if (i + 1 < samples.length && duration > 0) this.frameDuration = duration;
      return { duration: Math.max(duration, 1), data: s.data, key: s.key, offset: Math.max(times[i].pts - times[i].dts, 0) };
    });
    return fragment(++this.sequence, VIDEO_TRACK, Math.max(times[0].dts, 0), out);
  }

  audioFragment(sound) {
    const rate = this.audio.config.rate;
    const start = this.time(sound[0].pes.pts);
    const frames = sound.flatMap((a) => a.frames.map((f) => ({ duration: f.samples, data: f.data, key: true })));
    return fragment(++this.sequence, AUDIO_TRACK, Math.max(Math.round((start * rate) / CLOCK), 0), frames);
  }
}

function same(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------------
// The player

/// Whether this browser can play the broadcast through this player.
export function supported() {
  return typeof MediaSource !== "undefined" && MediaSource.isTypeSupported('video/mp4; codecs="avc1.42e01f, mp4a.40.2"');
}

/// Plays the live playlist at `url` in `video` until the broadcast ends (the playlist is gone)
/// or fails; then calls `ended(error)`. Returns a function that stops it.
export function playHls(video, url, { live, ended }) {
  const player = new Player(video, url, live, ended);
  player.run();
  return () => player.stop();
}

class Player {
  constructor(video, url, live, ended) {
    Object.assign(this, { video, url, live, ended, stopped: false, playing: false, next: null, broadcast: null });
    this.transmuxer = new Transmuxer();
    this.source = new MediaSource();
    this.buffer = null;
    video.src = URL.createObjectURL(this.source);
    this.opened = new Promise((resolve) => this.source.addEventListener("sourceopen", resolve, { once: true }));
    this.watchdog = setInterval(() => this.keepUp(), 1000);
  }

  async run() {
    try {
      await this.opened;
      while (!this.stopped) {
        const list = await this.playlist();
        if (!list) return this.finish(null);
        for (const entry of list.entries) {
          if (this.stopped || entry.seq < this.next) continue;
          const r = await fetch(new URL(entry.uri, this.url));
          if (!r.ok) break;
          await this.append(new Uint8Array(await r.arrayBuffer()));
          this.next = entry.seq + 1;
        }
        await new Promise((resolve) => setTimeout(resolve, (list.target * 1000) / 2));
      }
    } catch (e) {
      this.finish(e);
    }
  }

  /// The playlist's segments, or null when the broadcast is over (or a new one began: the
  /// page starts a new player for it).
  async playlist() {
    const r = await fetch(this.url, { cache: "no-store" });
    if (!r.ok) return null;
    const lines = (await r.text()).split("\n").map((l) => l.trim());
    const seq = Number(lines.find((l) => l.startsWith("#EXT-X-MEDIA-SEQUENCE:"))?.split(":")[1] ?? 0);
    const target = Number(lines.find((l) => l.startsWith("#EXT-X-TARGETDURATION:"))?.split(":")[1] ?? 2);
    const entries = lines.filter((l) => l && !l.startsWith("#")).map((uri, i) => ({ uri, seq: seq + i }));
    if (!entries.length) return { target, entries };
    const broadcast = entries[0].uri.split("-")[0];
    if (this.broadcast !== null && broadcast !== this.broadcast) return null;
    this.broadcast = broadcast;
    // Start three segments from the live edge; start there again after falling out of the window.
    if (this.next === null || this.next < seq) this.next = entries[Math.max(entries.length - 3, 0)].seq;
    return { target, entries };
  }

  async append(segment) {
    const { init, media, codecs } = this.transmuxer.push(segment);
    if (!this.buffer) {
      if (!init) return;
      this.buffer = this.source.addSourceBuffer(`video/mp4; codecs="${codecs}"`);
    }
    for (const part of [init, media]) {
      if (!part || !part.length) continue;
      await this.idle();
      this.buffer.appendBuffer(part);
    }
    await this.idle();
    const b = this.video.buffered;
    if (!this.playing && b.length) {
      this.playing = true;
      if (this.video.currentTime < b.start(0)) this.video.currentTime = b.start(0);
      this.video.play().catch(() => {});
      this.live();
    }
  }

  idle() {
    if (!this.buffer.updating) return Promise.resolve();
    return new Promise((resolve) => this.buffer.addEventListener("updateend", resolve, { once: true }));
  }

  /// Once a second: jump over gaps, catch up when far behind the live edge, drop what was
  /// played long ago.
  keepUp() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length || this.stopped || (v.paused && v.currentTime > 0)) return;
    const end = b.end(b.length - 1);
    for (let i = 0; i < b.length; i++) {
      if (v.currentTime < b.start(i) && (i === 0 || v.currentTime >= b.end(i - 1) - 0.1)) v.currentTime = b.start(i);
    }
    if (end - v.currentTime > 12) v.currentTime = end - 4;
    if (this.buffer && !this.buffer.updating && v.currentTime - b.start(0) > 40) this.buffer.remove(0, v.currentTime - 20);
  }

  finish(error) {
    if (this.stopped) return;
    this.stop();
    this.ended(error);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    URL.revokeObjectURL(this.video.src);
    this.video.removeAttribute("src");
    this.video.load();
  }
}
