// The public watch page plays a room's broadcast in headless chromium, once with the browser's
// own HLS playback and once with Plenum's player (Media Source Extensions, what Firefox gets):
// the video element advances, shows every publisher's colour, the own player decodes sound,
// and the page asked nothing of any other server (but the pool's nodes named in PLENUM_POOL,
// space-separated: in a pool the page's node redirects the playlist to the room's node).
//
// usage: [PLENUM_POOL="http://node-b …"] node watch.mjs <base-url> <room> <r,g,b> [<r,g,b>...]
import { chromium } from "playwright-core";
import { auditPage, fail } from "./lib.mjs";

const [base, room, ...colours] = process.argv.slice(2);
const wanted = colours.map((c) => c.split(",").map(Number));
const servers = [base, ...(process.env.PLENUM_POOL || "").split(" ").filter(Boolean)];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
});
try {
  for (const player of ["native", "plenum"]) await watch(player);
  console.log("RESULT watch ok");
} finally {
  await browser.close();
}

/// Opens the watch page with one of the players and checks what it shows.
async function watch(player) {
  const page = await browser.newPage({ locale: "de-DE" });
  const elsewhere = [];
  page.on("request", (r) => {
    const ours = servers.some((s) => r.url().startsWith(s)) || r.url().startsWith("data:") || r.url().startsWith("blob:");
    if (!ours) elsewhere.push(r.url());
  });
  page.on("console", (m) => m.type() === "warning" && console.log(`page: ${m.text()}`));
  await page.goto(`${base}/watch/${room}${player === "plenum" ? "?player=plenum" : ""}`);
  const started = Date.now();
  await page
    .waitForFunction(() => {
      const v = document.getElementById("broadcast");
      return v.readyState >= 2 && v.currentTime > 3;
    }, null, { timeout: 45_000 })
    .catch(async () => {
      const s = await page.evaluate(() => {
        const v = document.getElementById("broadcast");
        return { state: document.getElementById("watch-state").textContent, ready: v.readyState, t: v.currentTime, err: v.error?.message, src: v.src };
      });
      fail(`${player}: the broadcast does not play: ${JSON.stringify(s)}`);
    });
  const seen = await page.evaluate((wanted) => {
    const v = document.getElementById("broadcast");
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [v.videoWidth, v.videoHeight];
    const g = canvas.getContext("2d");
    g.drawImage(v, 0, 0);
    const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const share = wanted.map(([r, gr, b]) => {
      let n = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (Math.abs(px[i] - r) <= 40 && Math.abs(px[i + 1] - gr) <= 40 && Math.abs(px[i + 2] - b) <= 40) n++;
      }
      return n / (px.length / 4);
    });
    return { size: [v.videoWidth, v.videoHeight], share, audioBytes: v.webkitAudioDecodedByteCount, via: v.src.startsWith("blob:") ? "own player" : "native" };
  }, wanted);
  console.log(
    `ok ${player}: the watch page plays the broadcast (${seen.size[0]}x${seen.size[1]} via ${seen.via}, 3 s played ${((Date.now() - started) / 1000).toFixed(1)} s after opening; ` +
      `colour shares ${seen.share.map((s) => s.toFixed(3)).join(", ")}; ${seen.audioBytes} bytes of sound decoded)`,
  );
  if (player === "plenum" && seen.via !== "own player") fail("?player=plenum did not use Plenum's player");
  if (seen.share.some((s) => s < 0.04)) fail(`${player}: not every publisher's colour is in the picture`);
  if (!(seen.audioBytes > 0)) fail(`${player}: no sound decoded`);
  if (elsewhere.length) fail(`requests to other servers: ${elsewhere.join(", ")}`);
  const text = await page.textContent("#watch-state");
  if (!text.includes("Live")) fail(`${player}: the page says: ${text}`);
  if (player === "native") await auditPage(page, "the watch page (German)");
  await page.close();
}
