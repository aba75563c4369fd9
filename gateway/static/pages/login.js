// #/login: username and password. The service answers with an HttpOnly session cookie;
// the token in the body is deliberately ignored (a script must never hold it).

import { ApiError } from "../api.js";
import { fill, h, notice } from "../dom.js";
import { t } from "../i18n.js";
import { login } from "../session.js";

export function mount(el, _params, _query, { onLoggedIn }) {
  const username = h("input", { name: "username", id: "login-username", autocomplete: "username",
                                required: true, autofocus: true });
  const password = h("input", { name: "password", id: "login-password", type: "password",
                                autocomplete: "current-password", required: true });
  const message = h("div", { class: "message" });
  const submit = h("button", { type: "submit", class: "primary" }, t("login"));

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    fill(message);
    try {
      await login(username.value.trim(), password.value);
      onLoggedIn();
    } catch (err) {
      const text = err instanceof ApiError && err.status === 401 ? t("bad_credentials") : err.message;
      fill(message, notice(text));
      password.select();
    } finally {
      submit.disabled = false;
    }
  }

  fill(el, h("form", { class: "login card", id: "login-form", onsubmit: onSubmit },
    h("h1", {}, t("login_title")),
    h("label", {}, t("username"), username),
    h("label", {}, t("password"), password),
    message, submit));
}
