// Three people join one room through the real web client, each in their own headless
// Debian chromium with a fake camera (a solid colour) and a fake microphone (a sine tone).
// Each browser samples what it receives: the others' colours and tones must be there, its
// own tone must not (mix-minus). A chat line reaches the others. When one closes, its colour
// and tone leave the others' mix within 5 s.
//
// usage: node meeting.mjs <base-url> <fixtures-dir>   (fixtures: p{0,1,2}.y4m / .wav)
// Prints one line per check and a JSON summary; exits 1 on the first failed check.
import { describe, fail, launch, receivedVideoCodec, sample, waitMix } from "./lib.mjs";

const [base, fixtures] = process.argv.slice(2);
const ROOM = "e2e-meeting";
const PEOPLE = [
  { name: "Ada", colour: [230, 30, 30], tone: 500 },
  { name: "Bo", colour: [30, 200, 40], tone: 700 },
  { name: "Cem", colour: [40, 60, 230], tone: 900 },
];
const TIMEOUT_MS = 40_000;

async function launchPerson(i, options = {}) {
  const person = await launch(fixtures, i, PEOPLE[i]?.name ?? "Watcher", { locale: i === 1 ? "de-DE" : "en-GB", ...options });
  return { ...(PEOPLE[i] ?? {}), ...person };
}

function waitMixOf(person, what, ok, timeout) {
  return waitMix(person, PEOPLE, what, ok, timeout);
}

const HEARD_DB = -55; // a tone above this level (dBFS) is heard...
const SILENT_DB = -62; // ...and one below this is not
const SEEN = 0.04;
const GONE = 0.005;

const people = [];
try {
  for (let i = 0; i < PEOPLE.length; i++) {
    const person = await launchPerson(i);
    const joinStart = Date.now();
    await person.page.goto(`${base}/r/${ROOM}`);
    await person.page.fill("#name", person.name);
    const clicked = Date.now();
    await person.page.click("#join");
    await person.page.waitForSelector("#meeting:not([hidden])", { timeout: 10_000 });
    // The room's opener is shown the moderator link once.
    if (await person.page.isVisible("#modkey")) await person.page.click("#modkey-close");
    // Within 5 s, half the encoders' keyframe interval at test settings (150 frames at 15 fps):
    // a late joiner that waits for the next regular keyframe (its requests refused) fails here.
    await person.page
      .waitForFunction(() => document.getElementById("mix").videoWidth > 0, null, { timeout: 5_000 })
      .catch(() => fail(`${person.name} got no picture within 5 s of joining: no keyframe for a late joiner?`));
    person.joinToFirstFrame = Date.now() - clicked;
    person.joinStart = joinStart;
    people.push(person);
    console.log(`ok ${person.name} joined through the UI; first mixed frame ${person.joinToFirstFrame} ms after clicking join`);
  }
  const figures = {};
  for (const [i, person] of people.entries()) {
    const took = await waitMixOf(person, "sees and hears the two others, not itself", (s) =>
      PEOPLE.every((_, k) =>
        k === i
          ? s.tones[k] < SILENT_DB
          : s.coverage[k] >= SEEN && s.tones[k] >= HEARD_DB,
      ),
    );
    figures[person.name] = took;
    console.log(`ok ${person.name} sees and hears the others, and not its own tone: ${describe(PEOPLE, await sample(person.page, PEOPLE))}`);
  }
  figures.join_click_to_first_mixed_frame_ms = people.map((p) => p.joinToFirstFrame);
  // Browsers offer H.264 and get it: x264 costs the server a fraction of libvpx's CPU.
  const codec = await receivedVideoCodec(people[0].page);
  if (codec !== "video/H264") fail(`the mix should arrive as H.264, got ${codec}`);
  console.log(`ok the mix arrives as ${codec}`);

  // The German browser shows German.
  const label = await people[1].page.textContent("#leave");
  if (label !== "Verlassen") fail(`Bo's browser should be German, leave button says ${label}`);
  console.log("ok the German browser speaks German");

  // Chat from Ada reaches Bo and Cem, as text.
  await people[0].page.fill("#chat-input", "Guten Morgen <b>alle</b>");
  await people[0].page.press("#chat-input", "Enter");
  for (const person of people.slice(1)) {
    await person.page.waitForFunction(
      () => [...document.querySelectorAll("#messages .text")].some((e) => e.textContent === "Guten Morgen <b>alle</b>"),
      null,
      { timeout: 10_000 },
    );
    const injected = await person.page.$("#messages b");
    if (injected) fail(`${person.name}: chat text was rendered as HTML`);
  }
  console.log("ok chat reaches the others, as text");

  // Bo reloads the page: back in the meeting with the same name, listed once.
  await people[1].page.reload();
  await people[1].page.waitForSelector("#meeting:not([hidden])", { timeout: 15_000 });
  await people[0].page.waitForFunction(
    () => [...document.querySelectorAll("#people .name")].filter((e) => e.textContent === "Bo").length === 1 &&
      document.querySelectorAll("#people li").length === 3,
    null,
    { timeout: 10_000 },
  );
  await waitMixOf(people[0], "sees and hears Bo again after his reload", (s) => s.coverage[1] >= SEEN && s.tones[1] >= HEARD_DB);
  console.log("ok a reload rejoins with the same name");

  // Someone who refuses camera and microphone still watches and listens.
  const watcher = await launchPerson(3, { deny: true });
  people.push(watcher);
  await watcher.page.goto(`${base}/r/${ROOM}`);
  await watcher.page.waitForFunction(() => document.getElementById("device-note").textContent.length > 0, null, { timeout: 10_000 });
  const note = await watcher.page.textContent("#device-note");
  await watcher.page.fill("#name", "Watcher");
  await watcher.page.click("#join");
  await watcher.page.waitForSelector("#meeting:not([hidden])", { timeout: 10_000 });
  await waitMixOf(watcher, "watches and hears all three without devices", (s) =>
    PEOPLE.every((_, k) => s.coverage[k] >= SEEN && s.tones[k] >= HEARD_DB),
  );
  console.log(`ok without camera and microphone one still takes part (told: "${note}")`);
  await watcher.browser.close();
  people.pop();

  // Cem closes the tab: gone from Ada's and Bo's mix within 5 s.
  const closedAt = Date.now();
  await people[2].browser.close();
  for (const person of people.slice(0, 2)) {
    await waitMixOf(person, "no longer sees or hears Cem", (s) => s.coverage[2] <= GONE && s.tones[2] < SILENT_DB, 5000 - (Date.now() - closedAt));
  }
  figures.close_to_gone_ms = Date.now() - closedAt;
  console.log(`ok Cem's colour and tone left the others' mix in ${figures.close_to_gone_ms} ms`);
  console.log(`RESULT ${JSON.stringify(figures)}`);
} finally {
  await Promise.all(people.map((p) => p.browser.close().catch(() => {})));
}
