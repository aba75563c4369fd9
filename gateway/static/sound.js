// A short beep for new red and orange alerts, made with WebAudio so no sound file has
// to be shipped. Browsers only allow audio after a user gesture, so the context is
// created (or resumed) on the first click anywhere on the page.

const MUTE_KEY = "riskwatch.muted";
let context = null;
let muted = readMuted();

function readMuted() {
  try { return localStorage.getItem(MUTE_KEY) === "1"; } catch { return false; }
}

export const isMuted = () => muted;

export function setMuted(value) {
  muted = Boolean(value);
  try { localStorage.setItem(MUTE_KEY, muted ? "1" : "0"); } catch { /* session only */ }
}

export function unlockAudioOnGesture() {
  const unlock = () => {
    const Ctx = window.AudioContext ?? window.webkitAudioContext;
    if (!Ctx) return;
    context = context ?? new Ctx();
    context.resume?.();
  };
  document.addEventListener("pointerdown", unlock, { once: true, capture: true });
  document.addEventListener("keydown", unlock, { once: true, capture: true });
}

/** Two short tones, distinct from a browser's own notification sounds. */
export function beep() {
  if (muted || !context || context.state !== "running") return;
  const start = context.currentTime;
  for (const [offset, freq] of [[0, 880], [0.18, 660]]) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.08, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.15);
    osc.connect(gain).connect(context.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.16);
  }
}
