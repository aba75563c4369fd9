// Live alerts from the service's Server-Sent Events stream (event `alert`, data = the
// alert JSON). One EventSource for the whole app; pages subscribe while they are shown.
// The browser reconnects by itself after a network drop, but gives up for good on an
// HTTP error (e.g. 401 before login, 404 on a service without the stream), so we retry
// such a closed stream ourselves, slowly; pages poll meanwhile (see `isLive`).
// `hello` (sent once the service has subscribed us: from then on nothing is missed) and
// `resync` (it dropped our backlog because we fell behind) are passed on like a
// reconnection: pages reload what they show, closing the gap before the stream began.

const RETRY_MS = 10_000;
// The service pushes an alert before its write-behind store has committed it, so a list
// loaded right after `hello` can miss one pushed just before we subscribed: reload again
// once the store has caught up.
const SETTLE_MS = 2_000;
const listeners = new Set();
const statusListeners = new Set();
let source = null;
let retryTimer = null;
let live = false;

export const isLive = () => live;

/** Call `fn(alert)` for each pushed alert; returns the unsubscribe function. */
export function onAlert(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Call `fn(isLive)` whenever the stream opens or fails. */
export function onLiveStatus(fn) {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}

function setLive(value) {
  if (live === value) return;
  live = value;
  for (const fn of statusListeners) fn(live);
}

export function startLive() {
  if (source) return;
  clearTimeout(retryTimer);
  source = new EventSource(new URL("api/v1/stream", document.baseURI), { withCredentials: true });
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("alert", (event) => {
    let alert;
    try { alert = JSON.parse(event.data); } catch { return; } // a bad frame is skipped
    for (const fn of listeners) fn(alert);
  });
  const resync = () => {
    live = true;
    for (const fn of statusListeners) fn(true);
    setTimeout(() => { if (live) for (const fn of statusListeners) fn(true); }, SETTLE_MS);
  };
  source.addEventListener("hello", resync);
  source.addEventListener("resync", resync);
  source.addEventListener("error", () => {
    setLive(false);
    if (source?.readyState === EventSource.CLOSED) {
      source = null;
      retryTimer = setTimeout(startLive, RETRY_MS);
    }
  });
}

export function stopLive() {
  clearTimeout(retryTimer);
  source?.close();
  source = null;
  setLive(false);
}
