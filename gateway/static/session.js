// Who is logged in. The service keeps the session in an HttpOnly cookie; the page only
// remembers the user object that /auth/me returns, to decide what to show.

import { ApiError, get, post } from "./api.js";

export const session = {
  user: null,
  /** True when the service has no auth routes yet (an older build): the pages then
   * work without login and send the actor themselves, as that API wants. */
  authMissing: false,
};

const LEGACY_USER = { username: "operator", display_name: "operator", role: "admin",
                      scope: null, read_only: false, anonymous: false };

/** Ask the service who we are; `null` means the login page must be shown. */
export async function loadUser() {
  try {
    const data = await get("api/v1/auth/me", undefined, { quiet401: true });
    session.user = data?.user ?? data;
    session.authMissing = false;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    session.authMissing = err.status === 404;
    session.user = session.authMissing ? LEGACY_USER : null;
  }
  return session.user;
}

export async function login(username, password) {
  const data = await post("api/v1/auth/login", { username, password }, { quiet401: true });
  session.user = data.user;
  return data.user;
}

export async function logout() {
  try {
    await post("api/v1/auth/logout", undefined, { quiet401: true });
  } finally {
    session.user = null;
  }
}

/** May the user press buttons that change something (the demo's viewer may not). */
export const canAct = () => Boolean(session.user && !session.user.read_only);

/** Regulator roles dispatch, verify, close and silence; the server checks it again. */
export const isRegulator = () => ["admin", "county", "town"].includes(session.user?.role);

/** Extra body fields for the pre-auth API, which takes the actor from the request. */
export function legacyActor(field = "actor") {
  return session.authMissing ? { [field]: session.user?.username ?? "operator" } : {};
}
