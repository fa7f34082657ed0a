// The public pages: signing in (tenant, the tenant's identity provider, e-mail address and password, then the code
// of the authenticator app when the second factor is on), "forgot password" and the e-mailed links (invitation:
// set the first password; reset: set a new one). Nothing here needs a session; a successful sign-in or link answer
// starts one (state.js adoptSession) and goes on to where the person wanted to be.
import { api, ApiError } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtTime, fmtWait } from "./i18n.js";
import { state, adoptSession, mustEnrolTotp, problemText } from "./state.js";

const TENANT_KEY = "breitband.tenant";
const MIN_PASSWORD = 12;

/** Why the person is on the sign-in page (the server ended the session), as a notice above the form. */
function reasonNotice() {
  const reason = state.signInReason;
  return reason ? h("p.notice", { role: "alert", id: "signin-reason" }, t(`signInReason.${reason}`)) : null;
}

/** The German (or English) sentence for a refused sign-in, link or reset; 429 with the wait from Retry-After. */
function refusalText(e) {
  if (!(e instanceof ApiError)) return problemText(e);
  if (e.status === 429) {
    const wait = Number(e.headers.get("Retry-After"));
    return t("tooManyAttempts").replace("{wait}", fmtWait(Number.isFinite(wait) && wait > 0 ? wait : 60));
  }
  const known = t(`signInProblem.${e.slug}`);
  return known !== e.slug ? known : problemText(e);
}

async function tenantOptions() {
  const { data } = await api("/api/v1/auth/options", { anonymous: true });
  return data.tenants || [];
}

/** The tenant chooser: shown only when the service has more than one tenant; remembers the last choice. */
function tenantChooser(tenants, onChange) {
  const stored = localStorage.getItem(TENANT_KEY);
  const select = h("select", { name: "tenant", autocomplete: "off" },
    tenants.map((x) => h("option", { value: x.key, selected: x.key === stored }, x.name)));
  select.addEventListener("change", () => { localStorage.setItem(TENANT_KEY, select.value); onChange(); });
  const wrap = field(t("tenantChoice"), select);
  wrap.hidden = tenants.length < 2;
  return { wrap, current: () => tenants.find((x) => x.key === select.value) || tenants[0] };
}

/** Where to go once signed in: the second-factor set-up the tenant requires, or back where the person was. */
function goOn(home) {
  const back = state.returnTo;
  state.returnTo = null;
  location.hash = mustEnrolTotp() ? "#/setup-2fa" : back || home();
}

/** The identity provider's button: its start URL with the page to come back to (same origin; the server checks). */
function oidcBlock(tenant) {
  if (!tenant?.oidc) return null;
  const back = `/${state.returnTo || "#/"}`;
  const href = `${tenant.oidc.start_url}?return_to=${encodeURIComponent(back)}`;
  return h("div.oidc", h("a.button.wide", { href, id: "oidc-start" }, t("signInWith").replace("{name}", tenant.oidc.name)),
    tenant.local ? h("p.or", h("span", t("orWithPassword"))) : null);
}

export async function loginView(params, home) {
  const tenants = await tenantOptions();
  const err = h("p.error", { role: "alert", id: "signin-error" });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, spellcheck: "false",
    autocapitalize: "none", value: params.get("emailAddress") || "" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const code = h("input", { name: "totp_code", autocomplete: "one-time-code", inputmode: "numeric", pattern: "[0-9 ]{6,8}",
    maxlength: 8, spellcheck: "false" });
  const credentials = h("div", field(t("emailAddress"), email), field(t("password"), password));
  const codeStep = h("div", { hidden: true, id: "totp-step" }, h("p", t("totpStepHelp")), field(t("totpCode"), code));
  const submit = h("button.primary", { type: "submit" }, t("login"));
  const forgot = h("p.forgot", h("a", { href: "#/forgot" }, t("forgotPassword")));
  const oidc = h("div");
  const chooser = tenantChooser(tenants, () => showTenant());
  const form = h("form", { id: "signin-form", novalidate: false }, credentials, codeStep, err, submit, forgot);
  function showTenant() {
    const tenant = chooser.current();
    oidc.replaceChildren(oidcBlock(tenant) || "");
    form.hidden = tenant ? !tenant.local : false;
  }
  const totpStep = (on) => {
    credentials.hidden = on;
    forgot.hidden = on;
    codeStep.hidden = !on;
    code.required = on;
    submit.textContent = on ? t("confirmCode") : t("login");
    if (on) code.focus();
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.textContent = "";
    const body = { tenant: chooser.current()?.key, email: email.value.trim(), password: password.value,
      ...(codeStep.hidden ? {} : { totp_code: code.value.replace(/\s/g, "") }) };
    try {
      const { data } = await api("/api/v1/auth/login", { method: "POST", body, anonymous: true });
      adoptSession(data);
      goOn(home);
    } catch (e) {
      if (e instanceof ApiError && e.slug === "totp-required") totpStep(true);
      else {
        if (e instanceof ApiError && e.slug === "totp-invalid") code.select();
        else if (e instanceof ApiError && e.slug !== "too-many-sign-in-attempts") { totpStep(false); password.select(); }
        err.textContent = refusalText(e);
      }
    }
    submit.disabled = false;
  });
  showTenant();
  const card = h("section.card.narrow.signin", h("h1", t("loginTitle")), reasonNotice(), chooser.wrap, oidc, form);
  return [card];
}

/** "Forgot password": always the same answer, whether the address is known or not (nobody learns who has an
 * account here). */
export async function forgotView() {
  const tenants = await tenantOptions();
  const chooser = tenantChooser(tenants, () => {});
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, spellcheck: "false",
    autocapitalize: "none" });
  const out = h("div", { role: "status", id: "forgot-answer" });
  const submit = h("button.primary", { type: "submit" }, t("sendResetLink"));
  const form = h("form", { id: "forgot-form", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      await api("/api/v1/auth/password-reset", { method: "POST", anonymous: true,
        body: { tenant: chooser.current()?.key, email: email.value.trim() } });
      out.replaceChildren(h("p.notice.ok", t("resetRequested")));
      form.hidden = true;
    } catch (e) { out.replaceChildren(h("p.error", { role: "alert" }, refusalText(e))); }
    submit.disabled = false;
  } }, chooser.wrap, field(t("emailAddress"), email, t("forgotHelp")), submit);
  return [h("section.card.narrow.signin", h("h1", t("forgotTitle")), form, out,
    h("p", h("a", { href: "#/login" }, `← ${t("backToSignIn")}`)))];
}

/** What to do about a link that does not work (unknown, expired or used). */
function deadLink(e) {
  const slug = e instanceof ApiError ? e.slug : "";
  const purpose = e instanceof ApiError ? e.problem.purpose : null;
  const reason = ["link-unknown", "link-expired", "link-used"].includes(slug) ? slug : null;
  if (!reason) return [h("section.card.narrow", h("h1", t("linkTitle")), h("p.error", { role: "alert" }, problemText(e)))];
  const todo = [];
  if (purpose !== "reset") todo.push(h("li", t("linkAskAdmin")));
  if (purpose !== "invitation") todo.push(h("li", t("linkNewReset"), " ", h("a", { href: "#/forgot", id: "request-new-link" }, t("forgotPassword"))));
  return [h("section.card.narrow.signin", { id: "dead-link" }, h("h1", t(`linkDead.${reason}`)), h("p", t(`linkDeadWhy.${reason}`)),
    h("h2", t("linkWhatNow")), h("ul", todo), h("p", h("a", { href: "#/login" }, `← ${t("backToSignIn")}`)))];
}

/** A new password twice, with the policy and the server's verdict (too short, common, personal) in words. */
function passwordPair(emailValue) {
  // no minlength attribute: the browser's own bubble would speak the browser's language; check() says it here
  const pw = h("input", { type: "password", name: "new-password", autocomplete: "new-password", required: true,
    maxlength: 1024 });
  const again = h("input", { type: "password", name: "new-password-repeat", autocomplete: "new-password", required: true });
  const username = h("input", { type: "email", name: "username", autocomplete: "username", value: emailValue || "",
    readonly: true, hidden: true, tabindex: -1, "aria-hidden": "true" });
  const check = () => {
    if (pw.value.length < MIN_PASSWORD) return t("passwordTooShortHere").replace("{n}", MIN_PASSWORD);
    if (pw.value !== again.value) return t("passwordsDiffer");
    return null;
  };
  return { pw, again, check, nodes: [username, field(t("newPassword"), pw, t("passwordPolicy")), field(t("repeatPassword"), again)] };
}

export async function linkView(token, home) {
  let link;
  try { link = (await api(`/api/v1/auth/links/${encodeURIComponent(token || "")}`, { anonymous: true })).data; }
  catch (e) { return deadLink(e); }
  const pair = passwordPair(link.email);
  const err = h("p.error", { role: "alert", id: "link-error" });
  // a reset for someone with a second factor needs its code too (the server answers 401 totp-required)
  const code = h("input", { name: "totp_code", autocomplete: "one-time-code", inputmode: "numeric", maxlength: 8 });
  const codeField = field(t("totpCode"), code, t("totpStepHelp"));
  codeField.hidden = true;
  const submit = h("button.primary", { type: "submit" }, t("setPassword"));
  const form = h("form", { id: "link-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const problem = pair.check();
    if (problem) { err.textContent = problem; return; }
    submit.disabled = true;
    err.textContent = "";
    try {
      const body = { password: pair.pw.value, ...(codeField.hidden ? {} : { totp_code: code.value.replace(/\s/g, "") }) };
      const { data } = await api(`/api/v1/auth/links/${encodeURIComponent(token)}`, { method: "POST", anonymous: true, body });
      adoptSession(data);
      state.flash = { text: t("passwordSetWelcome"), kind: "ok" };
      goOn(home);
    } catch (e) {
      if (e instanceof ApiError && ["link-expired", "link-used", "link-unknown"].includes(e.slug)) {
        form.parentElement.replaceWith(...deadLink(e));
        return;
      }
      if (e instanceof ApiError && e.slug === "totp-required") { codeField.hidden = false; code.required = true; code.focus(); }
      else err.textContent = refusalText(e);
    }
    submit.disabled = false;
  } }, ...pair.nodes, codeField, err, submit);
  const heading = link.purpose === "invitation"
    ? t("welcomeSetPassword").replace("{name}", link.name || link.email) : t("newPasswordTitle");
  return [h("section.card.narrow.signin", h("h1", heading),
    h("dl.me", h("dt", t("emailAddress")), h("dd", { id: "link-email" }, link.email),
      h("dt", t("linkValidUntil")), h("dd", fmtTime(link.expires_at))), form)];
}
