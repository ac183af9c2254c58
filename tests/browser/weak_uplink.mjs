// One person publishes camera-like video (a colour under snow) from headless chromium through
// the real web client, while the Rust side of the test caps the link into the server. This
// script joins, prints "ready", then prints once a second what the browser itself knows about
// its sending (its bandwidth estimate, what it encodes, what the server reported lost).
//
// usage: node weak_uplink.mjs <base-url> <fixtures-dir> <room> <seconds>
import { fail, launch } from "./lib.mjs";
import { chooseScale } from "../../web/uplink.js";

// The web client's choice of picture size, as a pure function, before the real link.
for (const [height, estimate, now, want] of [
  [360, 3_000_000, 1, 1], // a free link: the camera's picture
  [360, 375_000, 1, 2], // a 500 kbit/s link: half the height
  [360, 375_000, 2, 2], // ...and it stays there
  [360, 100_000, 1, 4], // hardly anything: a quarter
  [360, 500_000, 2, 2], // not up without headroom
  [360, 700_000, 2, 1], // up with it
  [720, 1_200_000, 4, 2], // one step up at a time
]) {
  const got = chooseScale(height, estimate, now);
  if (got !== want) fail(`chooseScale(${height}, ${estimate}, ${now}) = ${got}, not ${want}`);
}

const [base, fixtures, room, seconds] = process.argv.slice(2);

const person = await launch(fixtures, 0, "Ada");
try {
  await person.page.goto(`${base}/r/${room}`);
  await person.page.fill("#name", "Ada");
  await person.page.click("#join");
  await person.page.waitForSelector("#meeting:not([hidden])", { timeout: 10_000 });
  if (await person.page.isVisible("#modkey")) await person.page.click("#modkey-close");
  console.log("ready");
  for (let t = 0; t < Number(seconds); t++) {
    await new Promise((r) => setTimeout(r, 1000));
    const sending = await person.page.evaluate(async () => {
      for (const pc of window.__peerConnections) {
        const out = {};
        (await pc.getStats()).forEach((s) => {
          if (s.type === "outbound-rtp" && s.kind === "video") {
            Object.assign(out, {
              bytesSent: s.bytesSent, frameHeight: s.frameHeight, framesPerSecond: s.framesPerSecond,
              targetBitrate: s.targetBitrate, limitation: s.qualityLimitationReason,
              retransmitted: s.retransmittedPacketsSent, nacks: s.nackCount,
            });
          }
          if (s.type === "remote-inbound-rtp" && s.kind === "video") {
            Object.assign(out, { fractionLost: s.fractionLost, packetsLost: s.packetsLost, rtt: s.roundTripTime });
          }
          if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.availableOutgoingBitrate !== undefined) {
            out.estimate = s.availableOutgoingBitrate;
          }
        });
        if (out.bytesSent !== undefined) return out;
      }
      return null;
    });
    if (!sending) fail("the page sends no video");
    console.log(`stats ${JSON.stringify(sending)}`);
  }
  console.log("RESULT done");
} catch (e) {
  fail(`${e}`);
} finally {
  await person.browser.close();
}
