// One person joins a room through the real web client in headless chromium (picture choice
// "automatic") while the Rust side of the test caps what the server sends it. This script
// joins, prints "ready", then prints once a second what the browser itself measures about
// what it receives (the mix's picture and sound) and what the page says about the quality.
//
// usage: node weak_downlink.mjs <base-url> <fixtures-dir> <room> <seconds>
import { fail, launch } from "./lib.mjs";

const [base, fixtures, room, seconds] = process.argv.slice(2);

const person = await launch(fixtures, 0, "Ada");
try {
  await person.page.goto(`${base}/r/${room}`);
  await person.page.fill("#name", "Ada");
  await person.page.click("#join");
  await person.page.waitForSelector("#meeting:not([hidden])", { timeout: 10_000 });
  if (await person.page.isVisible("#modkey")) await person.page.click("#modkey-close");
  await person.page.waitForFunction(() => document.getElementById("mix").videoWidth > 0, null, { timeout: 10_000 });
  console.log("ready");
  for (let t = 0; t < Number(seconds); t++) {
    await new Promise((r) => setTimeout(r, 1000));
    const receiving = await person.page.evaluate(async () => {
      const out = {};
      for (const pc of window.__peerConnections) {
        (await pc.getStats()).forEach((s) => {
          if (s.type !== "inbound-rtp") return;
          if (s.kind === "video") {
            Object.assign(out, {
              framesDecoded: s.framesDecoded, frameHeight: s.frameHeight, freezeCount: s.freezeCount,
              freezesSeconds: s.totalFreezesDuration, videoLost: s.packetsLost, nacks: s.nackCount,
            });
          }
          if (s.kind === "audio" && s.totalSamplesReceived > 0) {
            Object.assign(out, {
              samples: s.totalSamplesReceived, concealed: s.concealedSamples, silentConcealed: s.silentConcealedSamples,
              audioLost: s.packetsLost, concealmentEvents: s.concealmentEvents, audioPackets: s.packetsReceived,
              jitterMs: s.jitterBufferEmittedCount ? 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount : null,
              jitterTargetMs: s.jitterBufferEmittedCount ? 1000 * s.jitterBufferTargetDelay / s.jitterBufferEmittedCount : null,
              accel: s.removedSamplesForAcceleration, decel: s.insertedSamplesForDeceleration,
            });
          }
        });
      }
      return out;
    });
    console.log(`stats ${JSON.stringify(receiving)}`);
  }
  console.log("RESULT done");
} catch (e) {
  fail(`${e}`);
} finally {
  await person.browser.close();
}
