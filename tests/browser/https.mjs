// Two people on a LAN open the server by a host name (not localhost) and meet over the
// server's own HTTPS (`--tls-cert`): camera and microphone are only offered on a secure origin,
// so over plain HTTP the same name gives the page no devices at all. Chromium trusts the test
// certificate alone (its public key's hash), not "any certificate".
//
// Also used with a reverse proxy in front: then each person comes through another proxy.
//
// usage: node https.mjs <fixtures-dir> <spki-sha256-base64> <base-for-Ada> <base-for-Bo> [<plain-http-base>]
import { describe, fail, launch, sample, waitMix } from "./lib.mjs";

const [fixtures, spki, ...bases] = process.argv.slice(2);
const plain = bases[2];
const ROOM = "e2e-https";
const PEOPLE = [
  { name: "Ada", colour: [230, 30, 30], tone: 500 },
  { name: "Bo", colour: [30, 200, 40], tone: 700 },
];
const HEARD_DB = -55;
const SILENT_DB = -62;
const SEEN = 0.04;
const args = ["--host-resolver-rules=MAP plenum.test 127.0.0.1, MAP meet.example.org 127.0.0.1", `--ignore-certificate-errors-spki-list=${spki}`];

const people = [];
try {
  // The control: the same kind of name over plain HTTP is no secure context.
  if (plain) {
    const probe = await launch(fixtures, 0, "Plain", { args });
    await probe.page.goto(`${plain}/r/${ROOM}`);
    const insecure = await probe.page.evaluate(() => ({ secure: window.isSecureContext, devices: !!navigator.mediaDevices }));
    if (insecure.secure || insecure.devices) fail(`plain HTTP by host name should get no devices: ${JSON.stringify(insecure)}`);
    console.log(`ok over plain HTTP by host name the page gets no camera or microphone (${JSON.stringify(insecure)})`);
    await probe.browser.close();
  }

  for (let i = 0; i < PEOPLE.length; i++) {
    const person = { ...PEOPLE[i], ...(await launch(fixtures, i, PEOPLE[i].name, { args })) };
    await person.page.goto(`${bases[i]}/r/${ROOM}`);
    const context = await person.page.evaluate(() => ({ secure: window.isSecureContext, devices: !!navigator.mediaDevices, origin: location.origin }));
    if (!context.secure || !context.devices) fail(`${person.name}: HTTPS should be a secure context with devices: ${JSON.stringify(context)}`);
    await person.page.fill("#name", person.name);
    await person.page.click("#join");
    await person.page.waitForSelector("#meeting:not([hidden])", { timeout: 15_000 });
    if (await person.page.isVisible("#modkey")) await person.page.click("#modkey-close");
    people.push(person);
    console.log(`ok ${person.name} joined at ${context.origin} (secure context, devices offered)`);
  }
  const figures = {};
  for (const [i, person] of people.entries()) {
    figures[person.name] = await waitMix(person, PEOPLE, "sees and hears the other over HTTPS, not itself", (s) =>
      PEOPLE.every((_, k) => (k === i ? s.tones[k] < SILENT_DB : s.coverage[k] >= SEEN && s.tones[k] >= HEARD_DB)),
    );
    console.log(`ok ${person.name} sees and hears the other: ${describe(PEOPLE, await sample(person.page, PEOPLE))}`);
  }
  for (const person of people) {
    if (person.troubles.length) fail(`${person.name}: errors or failed requests: ${person.troubles.join("; ")}`);
  }
  console.log("ok no failed request and no console error (the control WebSocket went over wss)");
  console.log(`RESULT ${JSON.stringify({ ms_to_mix: figures })}`);
} finally {
  for (const person of people) await person.browser.close();
}
