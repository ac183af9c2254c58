// Shared by the browser tests: launching Debian's chromium with fake devices, and sampling
// what a page receives (colour coverage of the mixed video, tone levels of the mixed audio).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

export function fail(message) {
  console.log(`FAIL ${message}`);
  process.exit(1);
}

/// A headless chromium whose fake camera shows `p{i}.y4m` and fake microphone plays `p{i}.wav`
/// from `fixtures`; with `deny`, camera and microphone are refused instead.
/// `args`: more chromium switches (e.g. a host name mapping for a test).
export async function launch(fixtures, i, name, { deny = false, locale = "en-GB", viewport = undefined, args = [] } = {}) {
  const devices = deny
    ? ["--deny-permission-prompts"]
    : [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        `--use-file-for-fake-video-capture=${fixtures}/p${i}.y4m`,
        `--use-file-for-fake-audio-capture=${fixtures}/p${i}.wav`,
        "--auto-select-desktop-capture-source=Entire screen",
      ];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...devices,
      "--autoplay-policy=no-user-gesture-required",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      ...args,
    ],
  });
  const page = await browser.newPage({ locale, ...(viewport ? { viewport } : {}) });
  // Keep every peer connection the page makes, so a test can read its stats.
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__peerConnections = [];
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__peerConnections.push(this);
      }
    };
  });
  // Every console error and every failed request, for tests that want none.
  const troubles = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    troubles.push(m.text());
    console.log(`[${name} console] ${m.text()}`);
  });
  page.on("response", (r) => r.status() >= 400 && troubles.push(`${r.request().method()} ${r.url()}: ${r.status()}`));
  page.on("pageerror", (e) => console.log(`[${name} page error] ${e.message}`));
  return { browser, page, name, troubles };
}

/// Samples the mixed video and audio as this page receives them: for each of `people`
/// ({colour, tone}) the share of the picture in that colour and the tone's level in dBFS.
export async function sample(page, people) {
  return page.evaluate(async (people) => {
    const video = document.getElementById("mix");
    if (!video.srcObject || video.videoWidth === 0) return null;
    const canvas = document.createElement("canvas");
    canvas.width = 160;
    canvas.height = 90;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, 160, 90);
    const px = ctx.getImageData(0, 0, 160, 90).data;
    const coverage = people.map(({ colour }) => {
      let hits = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (Math.abs(px[i] - colour[0]) < 45 && Math.abs(px[i + 1] - colour[1]) < 45 && Math.abs(px[i + 2] - colour[2]) < 45) hits++;
      }
      return hits / (px.length / 4);
    });
    // A page that joined again without reloading plays a new stream: listen to that one.
    if (window.__probe && window.__probe.stream !== video.srcObject) {
      window.__probe.ctx.close();
      window.__probe = null;
    }
    if (!window.__probe) {
      const ctx = new AudioContext();
      const source = ctx.createMediaStreamSource(video.srcObject);
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 8192;
      // No smoothing: it is applied per call, and would make a vanished tone linger.
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
      window.__probe = { ctx, analyser, stream: video.srcObject };
      await new Promise((r) => setTimeout(r, 600));
    }
    const { ctx: audio, analyser } = window.__probe;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const hz = audio.sampleRate / analyser.fftSize;
    // Absolute level (dBFS) of each test tone.
    const tones = people.map(({ tone }) => {
      const k = Math.round(tone / hz);
      return Math.max(-200, ...bins.slice(k - 3, k + 4).filter(Number.isFinite));
    });
    return { coverage, tones };
  }, people.map(({ colour, tone }) => ({ colour, tone })));
}

export function describe(people, s) {
  if (!s) return "nothing received yet";
  return people.map((p, i) => `${p.name}: colour ${s.coverage[i].toFixed(3)} tone ${s.tones[i].toFixed(1)} dBFS`).join(", ");
}

/// Waits until `ok(sample)` holds for `person`'s page, or fails with the last sample.
export async function waitMix(person, people, what, ok, timeout = 40_000) {
  const start = Date.now();
  let last = null;
  while (Date.now() - start < timeout) {
    last = await sample(person.page, people);
    if (last && ok(last)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`${person.name}: ${what} (last: ${describe(people, last)})`);
}

/// The MIME type of the video this page receives (e.g. "video/H264"), from getStats.
export async function receivedVideoCodec(page) {
  return page.evaluate(async () => {
    for (const pc of window.__peerConnections ?? []) {
      const stats = await pc.getStats();
      for (const s of stats.values()) {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.codecId) return stats.get(s.codecId)?.mimeType ?? null;
      }
    }
    return null;
  });
}

const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

/// Runs axe-core's WCAG 2.0/2.1 A and AA rules on `page` as it is now (evaluated through the
/// debugging protocol: the page's content security policy rightly refuses injected scripts);
/// fails on any serious or critical violation.
export async function auditPage(page, what) {
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = result.violations.filter((v) => !bad.includes(v)).map((v) => `${v.id} (${v.impact})`);
  if (bad.length) {
    const where = (v) => v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")}${n.any[0]?.message ? ` [${n.any[0].message}]` : ""}`).join(", ");
    fail(`accessibility of ${what}: ${bad.map((v) => `${v.id} (${v.impact}) at ${where(v)}`).join("; ")}`);
  }
  console.log(`ok accessibility of ${what}: no serious or critical violation (${result.passes.length} rules pass${minor.length ? `; minor: ${minor.join(", ")}` : ""})`);
}

/// Where a page's media stands now, from its newest peer connections' stats: each connection's
/// state and, for video, frames sent (keyframes among them, PLIs received) or frames decoded
/// (keyframes among them, PLIs sent, freezes). For telling where time went when a page is slow.
export async function mediaState(page) {
  return page.evaluate(async () => {
    const pcs = (window.__peerConnections ?? []).filter((pc) => pc.connectionState !== "closed").slice(-3);
    const out = [];
    for (const pc of pcs) {
      const entry = { state: pc.connectionState };
      for (const s of (await pc.getStats()).values()) {
        if (s.kind !== "video") continue;
        if (s.type === "outbound-rtp") Object.assign(entry, { sent: s.framesEncoded ?? 0, sentKey: s.keyFramesEncoded ?? 0, plisIn: s.pliCount ?? 0 });
        if (s.type === "inbound-rtp") Object.assign(entry, { decoded: s.framesDecoded ?? 0, key: s.keyFramesDecoded ?? 0, plisOut: s.pliCount ?? 0, freezes: s.freezeCount ?? 0 });
      }
      out.push(entry);
    }
    return out;
  });
}

/// Waits until each of two pages sees and hears the other; meanwhile notes when each page
/// got to which step (joined again with media started, both connected, first picture, the
/// other seen and heard), printed either way: where the time went. `people`: the pages, whose
/// `response` and `websocket` events call their `onResponse` and `onSocket`; `PEOPLE`: who
/// sends which colour and tone.
export async function backInMix(people, PEOPLE, timeout, since = Date.now()) {
  const deadline = since + timeout;
  // Each page on its own (a page's first sample waits 0.6 s for its audio probe).
  const watch = async (p, i) => {
    const steps = {};
    const note = (step) => (steps[step] ??= Date.now() - since);
    // The page's requests on the way back: the server up, the control socket, the sessions.
    p.onResponse = (r) => {
      const path = new URL(r.url()).pathname;
      if (path === "/healthz" && r.ok()) note("healthz");
      if (r.request().method() === "POST" && r.status() === 201) {
        const kind = path.startsWith("/whip") ? "whip" : "whep";
        note(kind);
        // How long the server took to answer, and when the page sent the offer.
        const t = r.request().timing();
        steps[`${kind}_server`] ??= Math.round(t.responseStart - t.requestStart);
        steps[`${kind}_sent`] ??= Math.round(t.startTime - since);
      }
    };
    p.onSocket = () => note("socket");
    let last = "";
    while (Date.now() < deadline && (steps.seen === undefined || steps.heard === undefined)) {
      if (/Connected again|Wieder verbunden/.test(await p.page.textContent("#notice"))) note("rejoined");
      const media = await mediaState(p.page).catch(() => []);
      if (media.length >= 2 && media.every((m) => m.state === "connected")) note("connected");
      if (media.some((m) => m.decoded > 0)) note("picture");
      // Seen and heard count once the page's new sessions are up (before that a page may
      // still play what it had buffered).
      const s = steps.connected === undefined ? null : await sample(p.page, PEOPLE);
      if (s && s.coverage[1 - i] >= 0.04) note("seen");
      if (s && s.tones[1 - i] >= -55) note("heard");
      last = `${p.name}: ${describe(PEOPLE, s)}; media ${JSON.stringify(media)}`;
      await new Promise((r) => setTimeout(r, 100));
    }
    p.onResponse = p.onSocket = null;
    return { steps, last, done: steps.seen !== undefined && steps.heard !== undefined };
  };
  const results = await Promise.all(people.map(watch));
  console.log(`steps (ms): ${people.map((p, i) => `${p.name} ${JSON.stringify(results[i].steps)}`).join("; ")}`);
  if (!results.every((r) => r.done)) fail(`not both back in the mix within ${timeout} ms: ${results.map((r) => r.last).join(" | ")}`);
}
