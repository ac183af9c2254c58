// The meeting page as people who know Jitsi use it, on a laptop (1366x768, English) and a
// phone (390x844, German): nothing of the page falls out of the window, the waiting room
// tells the moderator who knocks and lets a reload back in, leaving fails no request and
// "join again" is one click, controls say whom they act on, bad addresses get a page.
// Each page (landing, pre-join, waiting, meeting, error; English and German) passes an axe-core
// audit (WCAG 2.1 A and AA rules) without serious or critical violations.
// Screenshots of each step go to the artifacts directory (kept by the test run, not committed).
//
// usage: node page.mjs <base-url> <fixtures-dir> <artifacts-dir>
import { mkdirSync } from "node:fs";
import { auditPage, fail, launch, waitMix } from "./lib.mjs";

const [base, fixtures, artifacts] = process.argv.slice(2);
const ROOM = "e2e-page";
const PEOPLE = [
  { name: "Ada", colour: [230, 30, 30], tone: 500 },
  { name: "Bo", colour: [30, 200, 40], tone: 700 },
];
const LAPTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };
mkdirSync(artifacts, { recursive: true });

const audited = [];
const audit = async (person, what) => {
  await auditPage(person.page, what);
  audited.push(what);
};

async function shot(person, what) {
  await person.page.screenshot({ path: `${artifacts}/${what}.png` });
}

/// Whether the element lies wholly inside the window, and the page does not scroll.
async function fits(page, selector) {
  return page.evaluate((selector) => {
    const r = document.querySelector(selector).getBoundingClientRect();
    const page = document.scrollingElement.scrollHeight;
    return { inside: r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth, bottom: Math.round(r.bottom), page, window: innerHeight };
  }, selector);
}

async function mustFit(person, selector, what) {
  const f = await fits(person.page, selector);
  if (!f.inside || f.page > f.window + 1) fail(`${what}: ${selector} ends at ${f.bottom} px, the page is ${f.page} px, the window ${f.window} px`);
  console.log(`ok ${what}: ${selector} inside the window (ends at ${f.bottom} of ${f.window} px; page ${f.page} px)`);
}

async function enter(person) {
  await person.page.goto(`${base}/r/${ROOM}`);
  await person.page.fill("#name", person.name);
  await person.page.click("#join");
}

const people = [];
try {
  const ada = { ...PEOPLE[0], ...(await launch(fixtures, 0, "Ada", { viewport: LAPTOP })) };
  people.push(ada);
  await enter(ada);
  await ada.page.waitForSelector("#meeting:not([hidden])");
  await ada.page.click("#modkey-close");
  if (await ada.page.isVisible("#conn") === false) fail("the connection state is not shown in the meeting");
  await ada.page.click("#set-waiting");
  await ada.page.waitForFunction(async () => (await (await fetch(location.pathname.replace("/r/", "/api/rooms/"))).json()).waiting_room);
  if (await ada.page.isVisible("#lobby-title")) fail("a 'waiting' heading while nobody waits");
  await mustFit(ada, "#chat-input", "a moderator at 1366x768");
  await shot(ada, "laptop-en-moderator");

  // Controls carry icons and tooltips naming their shortcuts; Alt+K lists them.
  const tip = await ada.page.getAttribute("#toggle-mic", "title");
  if (!tip?.includes("Alt+M") || !(await ada.page.$("#toggle-mic svg"))) fail(`the microphone button: icon and tooltip "${tip}"`);
  await ada.page.keyboard.press("Alt+K");
  await ada.page.waitForSelector("#shortcuts-dialog[open]", { timeout: 3_000 }).catch(() => fail("Alt+K shows no shortcuts"));
  const keys = await ada.page.$$eval("#shortcuts-dialog dt", (d) => d.length);
  await audit(ada, "the list of shortcuts (English)");
  await ada.page.click("#shortcuts-close");
  // Devices in the room: the microphone's level moves (the fake one plays a tone).
  await ada.page.click("#devices");
  await ada.page
    .waitForFunction(() => document.getElementById("room-mic-level").value > 0.2, null, { timeout: 5_000 })
    .catch(() => fail("the microphone level does not move in the devices dialog"));
  const cameras = await ada.page.$$eval("#room-camera-select option", (o) => o.length);
  await audit(ada, "the devices dialog (English)");
  await ada.page.click("#devices-close");
  console.log(`ok icons with tooltips ("${tip}"), ${keys} shortcuts listed on Alt+K, devices dialog with ${cameras} camera(s) and a moving level meter`);
  await audit(ada, "the meeting page (English, moderator)");

  // Bo on a phone, in German: the landing page's room field is usable, the pre-join page
  // shows no connection dot, and he waits.
  const bo = { ...PEOPLE[1], ...(await launch(fixtures, 1, "Bo", { viewport: PHONE, locale: "de-DE" })) };
  people.push(bo);
  await bo.page.goto(base);
  const field = await bo.page.evaluate(() => document.getElementById("room-name").getBoundingClientRect().width);
  if (field < 150) fail(`the landing page's room field is ${field} px wide on a phone`);
  console.log(`ok the landing page's room field is ${Math.round(field)} px wide on a phone`);
  await shot(bo, "phone-de-landing");
  await audit(bo, "the landing page (German)");
  await bo.page.goto(`${base}/r/${ROOM}`);
  await bo.page.waitForFunction(() => document.getElementById("camera-select").options.length > 0);
  await bo.page
    .waitForFunction(() => document.getElementById("mic-level").value > 0.2, null, { timeout: 5_000 })
    .catch(() => fail("the pre-join page's microphone level does not move"));
  console.log("ok the pre-join page shows the microphone's level moving (can they hear me?)");
  if (await bo.page.isVisible("#conn")) fail("a connection dot on the pre-join page");
  await shot(bo, "phone-de-prejoin");
  await audit(bo, "the pre-join page (German)");
  await bo.page.fill("#name", "Bo");
  await bo.page.click("#join");
  await bo.page.waitForSelector("#waiting:not([hidden])");
  if (await bo.page.isVisible("#conn")) fail("a connection dot while waiting");
  await audit(bo, "the waiting page (German)");

  // The moderator is told: the heading with a count, the notice, the tab's title.
  await ada.page.waitForSelector("#lobby-title:not([hidden])");
  const told = await ada.page.evaluate(() => ({ title: document.title, notice: document.getElementById("notice").textContent, count: document.getElementById("lobby-count").textContent }));
  if (!told.title.startsWith("(1)") || !told.notice.includes("Bo") || told.count !== "1") fail(`the moderator was not told: ${JSON.stringify(told)}`);
  const admit = await ada.page.getAttribute("#lobby li button >> nth=0", "aria-label");
  if (!admit?.includes("Bo")) fail(`the admit button does not say whom: ${admit}`);
  console.log(`ok the moderator is told who waits (title "${told.title}", notice "${told.notice}", button "${admit}")`);
  await shot(ada, "laptop-en-lobby");
  await audit(ada, "the meeting page with someone waiting (English)");
  await ada.page.click("#lobby li button >> nth=0");
  await bo.page.waitForSelector("#meeting:not([hidden])");
  await waitMix(bo, PEOPLE, "sees Ada", (s) => s.coverage[0] >= 0.04);
  if ((await ada.page.title()).startsWith("(")) fail("the title still counts a waiting person");
  await mustFit(bo, "#chat-input", "a participant on a 390x844 phone");
  await shot(bo, "phone-de-meeting");
  await audit(bo, "the meeting page (German, phone)");

  // Bo reloads: back in the meeting without waiting again.
  await bo.page.reload();
  await bo.page.waitForSelector("#meeting:not([hidden]), #waiting:not([hidden])", { timeout: 15_000 });
  if (await bo.page.isVisible("#waiting")) fail("a reload after admission lands in the waiting room again");
  await waitMix(bo, PEOPLE, "sees Ada after the reload", (s) => s.coverage[0] >= 0.04);
  console.log("ok a reload after admission goes straight back into the meeting");

  // Names on the moderator's controls, the picture, the chat read as "name: text".
  await ada.page.waitForFunction(() => document.querySelectorAll("#people li").length === 2);
  const labels = await ada.page.evaluate(() => [...document.querySelectorAll("#people .actions button")].map((b) => b.getAttribute("aria-label")));
  if (!labels.length || !labels.every((l) => l?.includes("Bo"))) fail(`per-person buttons: ${JSON.stringify(labels)}`);
  const mix = await ada.page.getAttribute("#mix", "aria-label");
  if (!mix) fail("the meeting's video has no label");
  await bo.page.fill("#chat-input", "Hallo");
  await bo.page.press("#chat-input", "Enter");
  await ada.page.waitForFunction(() => document.getElementById("messages").textContent.includes("Hallo"));
  const line = await ada.page.evaluate(() => document.querySelector("#messages li:last-child").innerText.replace(/\s+/g, " ").trim());
  if (!/Bo: Hallo$/.test(line)) fail(`a chat line reads "${line}"`);
  console.log(`ok controls say whom (${labels.join("; ")}), the picture is labelled ("${mix}"), chat reads "${line}"`);

  // Bo folds the chat away: what arrives meanwhile is counted on it.
  await bo.page.click("#chat-toggle");
  if (await bo.page.isVisible("#chat-input")) fail("the chat does not fold");
  await ada.page.fill("#chat-input", "Willkommen");
  await ada.page.press("#chat-input", "Enter");
  await bo.page.waitForFunction(() => document.getElementById("chat-unread").textContent === "1", null, { timeout: 5_000 }).catch(() => fail("no unread count on the folded chat"));
  await shot(bo, "phone-de-chat-folded");
  await bo.page.click("#chat-toggle");
  if (await bo.page.isVisible("#chat-unread")) fail("the unread count stays after opening the chat");
  console.log("ok the chat folds, counts what arrives meanwhile, and clears the count when opened");

  // What reaches Bo shows in Ada's list when it is less than the full picture.
  await bo.page.selectOption("#quality", "low");
  await ada.page
    .waitForFunction(() => [...document.querySelectorAll("#people li")].some((li) => li.textContent.includes("Bo") && li.textContent.includes("gets")), null, { timeout: 10_000 })
    .catch(() => fail("the list does not say that Bo gets a smaller picture"));
  const gets = await ada.page.evaluate(() => [...document.querySelectorAll("#people li")].find((li) => li.textContent.includes("Bo")).querySelector(".state").textContent);
  await bo.page.selectOption("#quality", "auto");
  await ada.page
    .waitForFunction(() => ![...document.querySelectorAll("#people li")].some((li) => li.textContent.includes("gets")), null, { timeout: 15_000 })
    .catch(() => fail("the list still says Bo gets less after automatic brought the full picture back"));
  console.log(`ok the moderator's list shows what reaches Bo ("${gets}"), and nothing once the full picture is back`);

  // Ada makes Bo a moderator: his page shows the moderation at once (folded on his phone).
  await ada.page.click('#people .actions button[aria-label="Make moderator: Bo"]');
  await bo.page.waitForSelector("#mod-panel:not([hidden])", { timeout: 5_000 }).catch(() => fail("Bo was made a moderator but sees no moderation"));
  const folded = await bo.page.evaluate(() => !document.getElementById("mod-panel").open);
  console.log(`ok a moderator makes another one: his moderation appears at once (${folded ? "folded" : "open"} on the phone)`);

  // Bo leaves: no failed request, no connection state left; "join again" is one click.
  bo.troubles.length = 0;
  await bo.page.click("#leave");
  await bo.page.waitForSelector("#left:not([hidden])");
  await new Promise((r) => setTimeout(r, 1000));
  if (bo.troubles.length) fail(`leaving failed: ${bo.troubles.join("; ")}`);
  if (await bo.page.isVisible("#conn")) fail("the connection state is still shown after leaving");
  const focused = await bo.page.evaluate(() => document.activeElement?.id);
  if (focused !== "rejoin") fail(`after leaving the focus is on "${focused}"`);
  await shot(bo, "phone-de-left");
  await bo.page.click("#rejoin");
  await bo.page.waitForSelector("#meeting:not([hidden]), #waiting:not([hidden])", { timeout: 15_000 });
  if (await bo.page.isVisible("#waiting")) fail("joining again after leaving waits again");
  await bo.page.waitForSelector("#mod-panel:not([hidden])", { timeout: 5_000 }).catch(() => fail("joining again lost the moderator role"));
  const inMeeting = await bo.page.evaluate(() => document.activeElement?.id);
  console.log(`ok leaving fails no request, hides the connection state, and "join again" is one click (focus then on "${inMeeting}")`);

  // A bad address gets a page in the visitor's language with the way back.
  const r = await bo.page.goto(`${base}/r/Bad%20Name!`);
  const text = await bo.page.textContent("#error-title");
  if (r.status() !== 400 || !text.includes("keine Adresse") || !(await bo.page.isVisible("#home"))) fail(`bad address: ${r.status()} "${text}"`);
  await shot(bo, "phone-de-bad-address");
  await audit(bo, "the page for a bad address (German)");
  console.log(`ok a bad address gets a page: ${r.status()} "${text}"`);
  console.log(`RESULT page ok (audited: ${audited.length} pages)`);
} finally {
  await Promise.all(people.map((p) => p.browser.close().catch(() => {})));
}
