// Camera, microphone and loudspeaker: the lists to choose from, a level meter ("can they hear
// me?"), a sound to test the loudspeaker, and switching a device while sending.

/// Fills `selects` ({ camera, mic, speaker }, any may be missing) with this computer's devices,
/// keeping what was chosen. A select without devices is disabled.
export async function listDevices(selects) {
  const devices = await navigator.mediaDevices?.enumerateDevices().catch(() => []) ?? [];
  const kinds = [[selects.camera, "videoinput"], [selects.mic, "audioinput"], [selects.speaker, "audiooutput"]];
  for (const [select, kind] of kinds) {
    if (!select) continue;
    const current = select.value;
    select.replaceChildren();
    for (const d of devices.filter((d) => d.kind === kind && d.deviceId)) {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || d.deviceId.slice(0, 8);
      select.append(option);
    }
    if (current) select.value = current;
    select.disabled = select.options.length === 0;
  }
}

/// Shows the level of `stream`'s microphone in `meter` (0 to 1) until the returned function
/// is called.
export function levelMeter(stream, meter) {
  const track = stream?.getAudioTracks()[0];
  if (!track || typeof AudioContext === "undefined") {
    meter.value = 0;
    return () => {};
  }
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((s, v) => s + v * v, 0) / samples.length);
    // Speech at a normal distance is around -30 dBFS: show -60..0 dBFS as 0..1.
    const db = 20 * Math.log10(Math.max(rms, 1e-6));
    meter.value = Math.min(Math.max((db + 60) / 60, 0), 1);
  }, 100);
  return () => {
    clearInterval(timer);
    ctx.close().catch(() => {});
    meter.value = 0;
  };
}

/// A short chime on the loudspeaker `sinkId` (the default one when empty): "can I hear?".
export async function testSound(sinkId) {
  const ctx = new AudioContext();
  if (sinkId && ctx.setSinkId) await ctx.setSinkId(sinkId).catch(() => {});
  [523, 659, 784].forEach((hz, i) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = hz;
    const at = ctx.currentTime + i * 0.2;
    gain.gain.setValueAtTime(0.15, at);
    gain.gain.exponentialRampToValueAtTime(0.001, at + 0.5);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.5);
  });
  setTimeout(() => ctx.close().catch(() => {}), 1500);
}

/// Plays `element`'s sound on the loudspeaker `sinkId`, where the browser allows choosing.
export async function useSpeaker(element, sinkId) {
  if (sinkId && element.setSinkId) await element.setSinkId(sinkId).catch(() => {});
}

/// Replaces the `kind` ("video" or "audio") track of `stream` with one from `deviceId`; a
/// running connection `pc` sends the new one without renegotiating. Returns the new track.
export async function switchDevice(stream, pc, kind, deviceId) {
  const fresh = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
  const track = fresh.getTracks()[0];
  const old = stream.getTracks().find((t) => t.kind === kind);
  track.enabled = old ? old.enabled : true;
  const sender = pc?.getSenders().find((s) => s.track?.kind === kind);
  if (sender) await sender.replaceTrack(track);
  if (old) {
    stream.removeTrack(old);
    old.stop();
  }
  stream.addTrack(track);
  return track;
}
