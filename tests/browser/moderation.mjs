// Meeting control through the real UI: the opener moderates (and is shown the moderator link
// once), turns on the waiting room, and admits a newcomer from the lobby; the newcomer shares
// a (fake) screen and the others' mixed video shows it large. The moderator makes a key for
// external viewers (shown once, with the WHEP URL); a WHEP player in another tab gets in only
// with it, the newcomer's page announces and lists it, and the moderator ends it. The newcomer
// turns the data saver on (a smaller picture, remembered) and off again. The moderator adds a
// hall camera (an RTSP server the test runs: blue, 880 Hz) through the panel: the newcomer's
// page lists it by name and state and shows and plays it; the moderator ends it.
//
// usage: node moderation.mjs <base-url> <fixtures-dir> <camera-url>
//        (fixtures: p{0,1}.y4m / .wav)
import { describe, fail, launch, sample, waitMix } from "./lib.mjs";

const [base, fixtures, cameraUrl] = process.argv.slice(2);
const CAMERA = [{ name: "Saal", colour: [40, 60, 230], tone: 880 }];
const HEARD_DB = -55;
const ROOM = "e2e-moderation";
const PEOPLE = [
  { name: "Ada", colour: [230, 30, 30], tone: 500 },
  { name: "Bo", colour: [30, 200, 40], tone: 700 },
];
const SEEN = 0.04;

const people = [];
try {
  const ada = { ...PEOPLE[0], ...(await launch(fixtures, 0, "Ada")) };
  people.push(ada);
  await ada.page.goto(`${base}/r/${ROOM}`);
  await ada.page.fill("#name", "Ada");
  await ada.page.click("#join");
  await ada.page.waitForSelector("#meeting:not([hidden])");
  const link = await ada.page.textContent("#modkey-link");
  if (!/\/r\/e2e-moderation#mod=[0-9a-f]{32}$/.test(link)) fail(`moderator link looks wrong: ${link}`);
  if (!(await ada.page.isVisible("#modkey"))) fail("the moderator link is not shown");
  await ada.page.click("#modkey-close");
  if (!(await ada.page.isVisible("#mod-panel"))) fail("the opener sees no moderation panel");
  console.log("ok the opener moderates and was shown the moderator link once");

  await ada.page.click("#set-waiting");
  await ada.page.waitForFunction(async () => (await (await fetch(location.pathname.replace("/r/", "/api/rooms/"))).json()).waiting_room);
  const bo = { ...PEOPLE[1], ...(await launch(fixtures, 1, "Bo", { locale: "de-DE" })) };
  people.push(bo);
  await bo.page.goto(`${base}/r/${ROOM}`);
  await bo.page.fill("#name", "Bo");
  await bo.page.click("#join");
  await bo.page.waitForSelector("#waiting:not([hidden])");
  if (await bo.page.isVisible("#meeting")) fail("a waiting participant sees the meeting");
  console.log("ok the newcomer waits");

  await ada.page.waitForSelector("#lobby li button");
  const waitingName = await ada.page.textContent("#lobby li span");
  if (waitingName !== "Bo") fail(`lobby shows ${waitingName}`);
  await ada.page.click("#lobby li button >> nth=0");
  await bo.page.waitForSelector("#meeting:not([hidden])");
  for (const [who, other] of [[ada, 1], [bo, 0]]) {
    await waitMix(who, PEOPLE, `sees ${PEOPLE[other].name}`, (s) => s.coverage[other] >= SEEN);
  }
  console.log("ok the moderator admitted the newcomer through the UI; both see each other");

  // Bo shares a screen: at Ada, the two cameras shrink into the strip under the screen.
  const before = await sample(ada.page, PEOPLE);
  await bo.page.click("#toggle-share");
  await waitMix(ada, PEOPLE, "sees the shared screen large", (s) => s.coverage[0] < 0.08 && s.coverage[1] < 0.08 && s.coverage[0] > 0.002);
  const during = await sample(ada.page, PEOPLE);
  console.log(`ok the shared screen takes the stage (before: ${describe(PEOPLE, before)}; during: ${describe(PEOPLE, during)})`);
  await bo.page.click("#toggle-share");
  await waitMix(ada, PEOPLE, "back to the grid", (s) => s.coverage[0] > 0.15 && s.coverage[1] > 0.15);
  console.log("ok stopping the share returns to the grid");
  // Data saver: Bo picks the lowest picture; it arrives smaller, still shows Ada, and the
  // choice is remembered in his browser. Back to automatic: the full picture again.
  const height = () => bo.page.evaluate(async () => {
    for (const pc of window.__peerConnections) {
      for (const s of (await pc.getStats()).values()) {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.frameHeight) return s.frameHeight;
      }
    }
    return 0;
  });
  const full = await height();
  await bo.page.selectOption("#quality", "low");
  const start = Date.now();
  while ((await height()) >= full && Date.now() - start < 15_000) await new Promise((r) => setTimeout(r, 250));
  const low = await height();
  if (!(low > 0 && low < full)) fail(`data saver: picture height ${low} (full: ${full})`);
  await waitMix(bo, PEOPLE, "sees Ada with the data saver on", (s) => s.coverage[0] >= SEEN);
  if ((await bo.page.evaluate(() => localStorage.getItem("plenum.quality"))) !== "low") fail("the data saver choice is not remembered");
  await bo.page.waitForFunction(() => document.getElementById("quality-now").textContent.includes("Datensparmodus"));
  await bo.page.selectOption("#quality", "auto");
  while ((await height()) < full && Date.now() - start < 30_000) await new Promise((r) => setTimeout(r, 250));
  if ((await height()) !== full) fail(`back to automatic: picture height ${await height()}`);
  console.log(`ok the data saver lowers the picture (${full}p -> ${low}p), is remembered, and automatic restores it`);

  // A key for external viewers, shown once with the URL.
  await ada.page.click("#viewer-key");
  await ada.page.waitForSelector("#keydialog[open]");
  const key = await ada.page.textContent("#key-value");
  const url = await ada.page.textContent("#key-url");
  if (!/^whep-[0-9a-f]{32}$/.test(key)) fail(`viewer key looks wrong: ${key}`);
  if (url !== `${base}/whep/${ROOM}`) fail(`WHEP URL looks wrong: ${url}`);
  await ada.page.click("#key-close");
  await ada.page
    .waitForFunction(() => document.getElementById("key-value").textContent === "", null, { timeout: 5_000 })
    .catch(() => fail("the key stays on the page after closing"));
  await ada.page
    .waitForFunction(() => document.getElementById("viewer-key-state").textContent.includes("active"), null, { timeout: 5_000 })
    .catch(() => fail("the panel does not say the key is active"));
  console.log("ok the moderator panel shows the viewer key once with the WHEP URL");

  // A WHEP player (another tab): refused without the key, let in with it.
  const player = await bo.browser.newPage();
  await player.goto(`${base}/healthz`);
  const whep = (bearer) =>
    player.evaluate(async ({ path, bearer }) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => {
        if (pc.iceGatheringState === "complete") r();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
        setTimeout(r, 2000);
      });
      const headers = { "Content-Type": "application/sdp" };
      if (bearer) headers.Authorization = `Bearer ${bearer}`;
      const response = await fetch(path, { method: "POST", headers, body: pc.localDescription.sdp });
      if (response.status !== 201) {
        pc.close();
        return { status: response.status };
      }
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      window.__player = pc;
      return { status: 201 };
    }, { path: `/whep/${ROOM}?label=Saalanzeige`, bearer });
  const refused = await whep(null);
  if (refused.status !== 401) fail(`an anonymous WHEP player got ${refused.status}`);
  const admitted = await whep(key);
  if (admitted.status !== 201) fail(`the viewer key got ${admitted.status}`);
  await player.waitForFunction(() => window.__player.connectionState === "connected", null, { timeout: 15_000 });
  await bo.page.waitForFunction(() => document.getElementById("notice").textContent.includes("Saalanzeige sieht und hört"));
  await bo.page
    .waitForFunction(() => /Saalanzeige[\s\S]*per Schlüssel/.test(document.getElementById("externals").textContent), null, { timeout: 5_000 })
    .catch(async () => fail(`Bo's list shows: ${await bo.page.textContent("#externals")}`));
  console.log("ok a WHEP player needs the key; the newcomer's page announces it (German) and lists it");

  await ada.page.click("#externals li button");
  await bo.page.waitForFunction(() => document.querySelectorAll("#externals li").length === 0);
  await bo.page.waitForFunction(() => document.getElementById("notice").textContent.includes("nicht mehr verbunden"));
  await player.waitForFunction(() => ["failed", "disconnected", "closed"].includes(window.__player.connectionState), null, { timeout: 20_000 });
  console.log("ok the moderator ended the external viewer");

  // A hall camera, added through the panel: listed by name and state, seen and heard.
  await ada.page.fill("#camera-name", "Saal");
  await ada.page.fill("#camera-url", cameraUrl);
  await ada.page.click("#camera-form button");
  if ((await ada.page.inputValue("#camera-url")) !== "") fail("the camera's URL stays in the page");
  await bo.page
    .waitForFunction(() => /Saal[\s\S]*Saalkamera · live/.test(document.getElementById("externals").textContent), null, { timeout: 15_000 })
    .catch(async () => fail(`Bo's list shows: ${await bo.page.textContent("#externals")}`));
  await waitMix(bo, CAMERA, "sees and hears the hall camera", (s) => s.coverage[0] >= SEEN && s.tones[0] >= HEARD_DB, 15_000);
  await ada.page.click("#externals li button");
  await waitMix(bo, CAMERA, "no longer sees the hall camera", (s) => s.coverage[0] < 0.005, 10_000);
  await bo.page.waitForFunction(() => document.querySelectorAll("#externals li").length === 0);
  console.log("ok a hall camera added in the panel is listed, seen and heard, and ended");

  // Consent: the moderator records; everyone's page says so for as long as it runs.
  await ada.page.click("#set-recording");
  await bo.page
    .waitForFunction(() => {
      const banner = document.getElementById("recording-banner");
      return !banner.hidden && banner.textContent.includes("aufgezeichnet");
    }, null, { timeout: 10_000 })
    .catch(() => fail("the newcomer's page shows no recording banner"));
  await bo.page.waitForFunction(() => document.getElementById("notice").textContent.includes("Aufzeichnung hat begonnen"));
  if (!(await ada.page.isVisible("#recording-banner"))) fail("the moderator's page shows no recording banner");
  // Stopped too soon, the file holds less than a frame and has no length to list: wait until
  // the server lists a second of it (asked as the page asks, with the moderator key; polled
  // here, since waitForFunction takes a returned promise for a true value).
  const listsASecond = () =>
    ada.page.evaluate(async (room) => {
      const key = sessionStorage.getItem(`plenum.modkey.${room}`);
      const answer = await fetch(`/api/rooms/${room}/recordings`, { headers: { Authorization: `Bearer ${key}` } }).then((r) => r.json());
      return answer.recordings.some((r) => r.recording && r.duration_s >= 1);
    }, ROOM);
  const until = Date.now() + 15_000;
  while (!(await listsASecond())) {
    if (Date.now() > until) fail("the running recording never had a second in it");
    await new Promise((r) => setTimeout(r, 500));
  }
  await ada.page.click("#set-recording");
  await bo.page
    .waitForFunction(() => document.getElementById("recording-banner").hidden, null, { timeout: 10_000 })
    .catch(() => fail("the banner stays after the recording stopped"));
  console.log("ok the moderator records: the banner and a notice on every page while it runs");

  await ada.page.click("#recordings-box summary");
  await ada.page
    .waitForFunction(() => /e2e-moderation-\d{8}-\d{6}\.ts \(\d+:\d\d, [\d.]+ MB\)/.test(document.getElementById("recordings").textContent), null, { timeout: 10_000 })
    .catch(async () => {
      const api = await ada.page.evaluate(async (room) => {
        const key = sessionStorage.getItem(`plenum.modkey.${room}`);
        return fetch(`/api/rooms/${room}/recordings`, { headers: { Authorization: `Bearer ${key}` } }).then((r) => r.text());
      }, ROOM);
      fail(`the moderator's list of recordings shows: ${await ada.page.textContent("#recordings")} (the API: ${api})`);
    });
  const [download] = await Promise.all([ada.page.waitForEvent("download", { timeout: 10_000 }), ada.page.click("#recordings li button")]);
  const saved = await download.path();
  const { statSync } = await import("node:fs");
  if (!saved || statSync(saved).size < 1000) fail(`the downloaded recording is ${saved ? statSync(saved).size : "missing"}`);
  console.log(`ok the moderator lists the recording and downloads it (${statSync(saved).size} bytes)`);
  console.log("RESULT moderation ok");
} finally {
  await Promise.all(people.map((p) => p.browser.close().catch(() => {})));
}
