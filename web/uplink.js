// Fits the camera's picture to the sender's uplink. A browser lowers its bitrate to what its
// estimate of the link allows but keeps the camera's size, and camera-like video at 360p in
// 150 kbit/s loses most of its frames (the tile stood still for over a second behind a
// 500 kbit/s uplink). So the page watches the browser's estimate and asks it to send a
// smaller picture (half or a quarter of the height) while the link is weak, and the full one
// again when there is room to spare. The server scales every tile to its place anyway.

/// The scales the picture may be sent at (the camera's height divided by).
export const SCALES = [1, 2, 4];
/// How often the estimate is read.
const EVERY_MS = 2000;
/// A browser's estimate starts low (300 kbit/s) and climbs for a few seconds: not read before.
const SETTLING_MS = 6000;
/// Readings in a row that must agree before the picture gets smaller or larger.
const DOWN_AFTER = 2;
const UP_AFTER = 3;
/// Going up needs this much more than the larger picture needs (no flapping at the edge).
const HEADROOM = 1.5;

/// Bits per second a camera picture of `height` lines needs to move smoothly: about 400 kbit/s
/// at 360p, growing with the number of pixels (to the power 0.75).
export function needs(height) {
  return 400_000 * Math.pow(height / 360, 1.5);
}

/// The scale to send a camera of `height` lines at, given the link's `estimate` (bit/s) and the
/// scale sent now: down to the largest picture that fits, up one step only with headroom.
export function chooseScale(height, estimate, current) {
  const fits = (s) => estimate >= needs(height / s);
  if (!fits(current)) return SCALES.find(fits) ?? SCALES[SCALES.length - 1];
  const up = SCALES[SCALES.indexOf(current) - 1];
  return up !== undefined && estimate >= HEADROOM * needs(height / up) ? up : current;
}

/// The browser's estimate of what it may send (bit/s), or null while it has none.
async function estimate(pc) {
  const stats = await pc.getStats().catch(() => new Map());
  for (const s of stats.values()) {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.availableOutgoingBitrate) {
      return s.availableOutgoingBitrate;
    }
  }
  return null;
}

/// Watches `pc`'s camera sender until `pc` closes; `onChange(scale)` hears each change.
export function fitToUplink(pc, onChange = () => {}) {
  let scale = 1;
  let connectedSince = null;
  let wanted = { scale: 1, times: 0 };
  const timer = setInterval(async () => {
    if (pc.connectionState === "closed") {
      clearInterval(timer);
      return;
    }
    if (pc.connectionState !== "connected") {
      connectedSince = null;
      return;
    }
    connectedSince ??= performance.now();
    const sender = pc.getSenders().find((s) => s.track?.kind === "video" && s.track.readyState === "live");
    const height = sender?.track.getSettings().height;
    if (!height || performance.now() - connectedSince < SETTLING_MS) return;
    const bits = await estimate(pc);
    if (bits === null) return;
    const next = chooseScale(height, bits, scale);
    wanted = next === wanted.scale ? { scale: next, times: wanted.times + 1 } : { scale: next, times: 1 };
    if (next === scale || wanted.times < (next > scale ? DOWN_AFTER : UP_AFTER)) return;
    const params = sender.getParameters();
    if (!params.encodings?.length) return;
    params.encodings[0].scaleResolutionDownBy = next;
    try {
      await sender.setParameters(params);
      scale = next;
      onChange(scale);
    } catch {
      // A renegotiation in between: the next reading tries again.
    }
  }, EVERY_MS);
  return () => clearInterval(timer);
}
