// The public watch page plays a room's broadcast in headless chromium (its own HLS playback):
// the video element advances, and the page asked nothing of any other server.
//
// usage: node watch.mjs <base-url> <room>
import { chromium } from "playwright-core";

const [base, room] = process.argv.slice(2);
const fail = (m) => {
  console.log(`FAIL ${m}`);
  process.exit(1);
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage({ locale: "de-DE" });
  const elsewhere = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) elsewhere.push(r.url());
  });
  await page.goto(`${base}/watch/${room}`);
  const started = Date.now();
  await page
    .waitForFunction(() => {
      const v = document.getElementById("broadcast");
      return v.readyState >= 2 && v.currentTime > 3;
    }, null, { timeout: 45_000 })
    .catch(async () => {
      const s = await page.evaluate(() => {
        const v = document.getElementById("broadcast");
        return { state: document.getElementById("watch-state").textContent, ready: v.readyState, t: v.currentTime, err: v.error?.message };
      });
      fail(`the broadcast does not play: ${JSON.stringify(s)}`);
    });
  const size = await page.evaluate(() => [document.getElementById("broadcast").videoWidth, document.getElementById("broadcast").videoHeight]);
  console.log(`ok the watch page plays the broadcast (${size[0]}x${size[1]}, 3 s played ${((Date.now() - started) / 1000).toFixed(1)} s after opening)`);
  if (elsewhere.length) fail(`requests to other servers: ${elsewhere.join(", ")}`);
  const text = await page.textContent("#watch-state");
  if (!text.includes("Live")) fail(`the page says: ${text}`);
  console.log("RESULT watch ok");
} finally {
  await browser.close();
}
