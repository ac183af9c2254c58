// A meeting of two browsers in a pool of nodes: both open the room's page on a node that
// does not host the room, so the page finds the room's node and talks to it (WebSocket,
// WHIP, WHEP across origins). The test (the Rust side) then takes that node away (kills it,
// or drains it with a short deadline) and says so on this script's standard input; both pages
// must be back in the mix, on another node, within 15 s.
//
// usage: node pool.mjs <page-base-url> <fixtures-dir> <room-node-url>
//        prints "READY" once both meet on the room's node, reads "GONE <how>".
import { createInterface } from "node:readline";
import { backInMix, fail, launch } from "./lib.mjs";

const [base, fixtures, roomNode] = process.argv.slice(2);
const ROOM = "e2e-pool";
const PEOPLE = [
  { name: "Ada", colour: [230, 30, 30], tone: 500 },
  { name: "Bo", colour: [30, 200, 40], tone: 700 },
];
const BACK_WITHIN_MS = 15_000;
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

const people = [];
try {
  for (let i = 0; i < PEOPLE.length; i++) {
    const person = { ...PEOPLE[i], ...(await launch(fixtures, i, PEOPLE[i].name)) };
    people.push(person);
    person.wsUrls = [];
    person.page.on("response", (r) => person.onResponse?.(r));
    person.page.on("websocket", (ws) => {
      person.wsUrls.push(ws.url());
      person.onSocket?.();
    });
    await person.page.goto(`${base}/r/${ROOM}`);
    await person.page.fill("#name", person.name);
    await person.page.click("#join");
    await person.page.waitForSelector("#meeting:not([hidden])");
    if (await person.page.isVisible("#modkey")) await person.page.click("#modkey-close");
  }
  await backInMix(people, PEOPLE, 40_000);
  const host = new URL(roomNode).host;
  for (const p of people) {
    if (!p.wsUrls.some((u) => new URL(u).host === host)) fail(`${p.name}'s page did not talk to the room's node ${host}: ${p.wsUrls}`);
  }
  console.log(`ok two people meet on the room's node ${host}, their pages served by another`);
  console.log("READY");
  const gone = await lines.next();
  if (!gone.value?.startsWith("GONE ")) fail(`expected "GONE <how>", got ${gone.value}`);
  const how = gone.value.slice(5);
  const at = Date.now();
  // Each page notices: at once when its node is killed, at the deadline when it drains.
  for (const p of people) {
    await p.page
      .waitForFunction(() => /reconnect|wiederhergestellt/.test(document.getElementById("notice").textContent), null, { timeout: 10_000 })
      .catch(() => fail(`${p.name} is not told that it reconnects after its node was ${how}`));
  }
  await backInMix(people, PEOPLE, BACK_WITHIN_MS, at);
  const took = Date.now() - at;
  for (const p of people) {
    const last = new URL(p.wsUrls[p.wsUrls.length - 1]).host;
    if (last === host) fail(`${p.name} is still on the ${how} node`);
  }
  console.log(`ok both back in the mix on another node ${took} ms after the room's node was ${how}`);
  console.log("RESULT pool ok");
} finally {
  await Promise.all(people.map((p) => p.browser.close().catch(() => {})));
  input.close();
  process.stdin.destroy();
}
