// Runs the watch page's own player's transmuxer (web/broadcast-player.js) in node on a live
// broadcast: the playlist's last three segments, turned into one fragmented MP4 file that an
// independent reader (ffmpeg) then decodes.
//
// usage: node transmux.mjs <playlist-url> <out.mp4>
import { writeFileSync } from "node:fs";
import { Transmuxer } from "../../web/broadcast-player.js";

const [playlist, out] = process.argv.slice(2);
const text = await (await fetch(playlist, { cache: "no-store" })).text();
const segments = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")).slice(-3);
if (segments.length < 3) throw new Error(`three segments wanted, the playlist has:\n${text}`);
const transmuxer = new Transmuxer();
const parts = [];
for (const name of segments) {
  const r = await fetch(new URL(name, playlist));
  if (!r.ok) throw new Error(`${name}: ${r.status}`);
  const { init, media, codecs } = transmuxer.push(new Uint8Array(await r.arrayBuffer()));
  if (init) parts.push(init);
  parts.push(media);
  console.log(`${name}: ${media.length} bytes of fragments (${codecs})`);
}
writeFileSync(out, Buffer.concat(parts));
console.log(`RESULT transmux ok ${transmuxer.video.width}x${transmuxer.video.height}`);
