// The dashboard's shell: hash routes, the top bar (navigation, language, mute, user),
// the health line, and the live stream's life. Pages live in ./pages/, one module each,
// with `mount(el, params, query)` returning a cleanup function (timers, subscriptions).

import { setUnauthenticatedHandler } from "./api.js";
import { fill, h } from "./dom.js";
import { getLang, setLang, t } from "./i18n.js";
import { isLive, onLiveStatus, startLive, stopLive } from "./live.js";
import * as alertDetail from "./pages/alert_detail.js";
import * as alerts from "./pages/alerts.js";
import * as enterprise from "./pages/enterprise.js";
import * as enterprises from "./pages/enterprises.js";
import * as login from "./pages/login.js";
import * as onboarding from "./pages/onboarding.js";
import * as silences from "./pages/silences.js";
import { canAct, isRegulator, loadUser, logout, session } from "./session.js";
import { isMuted, setMuted, unlockAudioOnGesture } from "./sound.js";

const HEALTH_EVERY_MS = 5000;

const ROUTES = [
  [/^\/login$/, login],
  [/^\/alerts$/, alerts],
  [/^\/alerts\/([^/]+)$/, alertDetail],
  [/^\/enterprises$/, enterprises],
  [/^\/enterprises\/([^/]+)$/, enterprise],
  [/^\/silences$/, silences],
  [/^\/onboarding$/, onboarding],
];

// [href, text, shown to]: silences are the regulators' (the API refuses others).
const NAV = [["#/alerts", "nav_alerts"], ["#/enterprises", "nav_enterprises"],
             ["#/silences", "nav_silences", isRegulator], ["#/onboarding", "nav_onboarding"]];

const view = document.getElementById("view");
let cleanup = null;
let afterLogin = "#/alerts";

/** "#/alerts?level=1" → {path: "/alerts", query: URLSearchParams("level=1")} */
function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/alerts";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function route() {
  cleanup?.();
  cleanup = null;
  const { path, query } = parseHash();
  if (!session.user && path !== "/login") {
    afterLogin = location.hash || "#/alerts";
    location.hash = "#/login"; // routes again through hashchange
    return;
  }
  renderTopbar();
  const found = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  // A fresh container per visit: a slow answer for the page we left lands in a
  // detached element instead of over the new page.
  const el = h("div", { class: "page" });
  view.replaceChildren(el);
  if (!found) {
    fill(el, h("p", {}, t("not_found")));
    return;
  }
  const [match, page] = found;
  const params = match.slice(1).map(decodeURIComponent);
  cleanup = page.mount(el, params, query, { onLoggedIn }) ?? null;
}

function onLoggedIn() {
  startLive();
  const next = afterLogin === "#/login" ? "#/alerts" : afterLogin;
  afterLogin = "#/alerts";
  location.hash = next;
}

function renderTopbar() {
  document.getElementById("brand").textContent = t("app_title");
  document.title = t("app_title");
  const current = "#" + parseHash().path;
  fill(document.getElementById("nav"), session.user
    ? NAV.filter(([, , shown]) => !shown || shown()).map(([href, key]) => h("a", {
      href, class: current.startsWith(href) ? "active" : null }, t(key)))
    : []);
  const mute = document.getElementById("mute");
  mute.textContent = isMuted() ? t("unmute") : t("mute");
  mute.setAttribute("aria-pressed", String(isMuted()));
  document.getElementById("lang").textContent = getLang() === "zh" ? "English" : "中文";
  const user = session.user;
  const userBox = document.getElementById("user");
  if (!user || session.authMissing) {
    fill(userBox);
  } else if (!canAct()) {
    // The demo's anonymous viewer: may look, may log in as somebody who can act.
    fill(userBox, h("span", { class: "muted" }, `${user.display_name || user.username} · ${t("read_only")}`),
         " ", h("a", { href: "#/login", id: "login-link" }, t("login")));
  } else {
    fill(userBox, h("span", {}, user.display_name || user.username), " ",
         h("button", { type: "button", class: "plain", id: "logout", onclick: doLogout }, t("logout")));
  }
}

async function doLogout() {
  await logout().catch(() => {}); // the cookie is gone or will expire either way
  stopLive();
  location.hash = "#/login";
  route();
}

function unauthenticated() {
  if (session.authMissing) return;
  session.user = null;
  stopLive();
  if (parseHash().path !== "/login") route();
}

async function refreshHealth() {
  const el = document.getElementById("health");
  try {
    // 503 (degraded) still carries the health body, so read it whatever the status.
    const response = await fetch(new URL("api/v1/health", document.baseURI));
    const body = await response.json();
    const mqtt = body.mqtt?.connected;
    el.textContent = t("health", {
      mqtt: mqtt === true ? t("mqtt_up") : mqtt === false ? t("mqtt_down") : t("mqtt_none"),
      messages: body.messages, samples: body.samples, quarantined: body.quarantined,
      open: body.open_alerts });
    el.className = body.status === "ok" ? "" : "degraded";
  } catch (err) {
    el.textContent = t("unavailable", { error: err.message ?? err });
    el.className = "degraded";
  }
}

function renderLive(live) {
  const el = document.getElementById("live");
  el.className = `live ${live ? "on" : "off"}`;
  el.textContent = live ? "● " + t("live_on") : "○ " + t("live_off");
}

async function start() {
  window.riskwatchStarted = true;
  setLang(getLang()); // sets <html lang>
  setUnauthenticatedHandler(unauthenticated);
  unlockAudioOnGesture();
  document.getElementById("mute").addEventListener("click", () => {
    setMuted(!isMuted());
    renderTopbar();
  });
  document.getElementById("lang").addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    renderLive(isLive());
    refreshHealth();
    route(); // pages build their texts when mounted
  });
  onLiveStatus(renderLive);
  renderLive(false);
  window.addEventListener("hashchange", route);
  refreshHealth();
  setInterval(refreshHealth, HEALTH_EVERY_MS);
  try {
    await loadUser();
  } catch (err) {
    document.getElementById("health").textContent = t("unavailable", { error: err.message });
  }
  if (session.user) startLive();
  route();
}

start();
