// Administration: people (search and filter, invite, change a role, deactivate and reactivate, send an invitation
// again), organisations (list, create, edit the functional mailbox) and the security events (tenant admins).
// Tenant admins administer the whole tenant; authority admins and operator admins their own organisation, with the
// roles of its kind (the server enforces the same and answers 403 otherwise).
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtTime } from "./i18n.js";
import { state, isTenantAdmin, say, problemText, rerender } from "./state.js";
import { confirmButton } from "./shared.js";

// Which roles people of an organisation kind can have.
const ROLES_BY_KIND = {
  operator: ["operator_member", "operator_admin"],
  road_authority: ["authority_reviewer", "authority_admin"],
  participating_body: ["authority_reviewer", "authority_admin"],
  operating_office: ["tenant_admin"],
};
const ORG_KINDS = Object.keys(ROLES_BY_KIND);
const EVENT_KINDS = ["sign-in", "sign-in-failed", "lockout", "sign-out", "session-ended", "password-set",
  "password-reset-requested", "totp-enabled", "totp-disabled", "role-changed", "user-invited", "user-created",
  "user-changed", "user-deactivated", "user-reactivated", "token-created", "token-revoked", "oidc-sign-in", "oidc-failed",
  "user-provisioned", "organisation-created", "organisation-changed"];

const items = (data) => (Array.isArray(data) ? data : data?.items || []);
const roleLabel = (role, kind) => (kind === "participating_body" ? t(`bodyRoles.${role}`) : t(`roles.${role}`));
/** The roles an admin may give in an organisation: never tenant_admin unless one is a tenant admin. */
const grantable = (kind) => (ROLES_BY_KIND[kind] || []).filter((r) => r !== "tenant_admin" || isTenantAdmin());

/** The organisations an admin may administer (tenant admins: all of the tenant; others: their own). */
async function myOrganisations() {
  const orgs = items(await get("/api/v1/admin/organisations?limit=500"));
  return orgs.sort((a, b) => a.name.localeCompare(b.name, "de"));
}

function options(list, selected, { any } = {}) {
  return [any ? h("option", { value: "" }, any) : null,
    ...list.map(([value, label]) => h("option", { value, selected: String(value) === String(selected ?? "") }, label))];
}

// --- people -----------------------------------------------------------------------------------------------------

function filtersForm(params, orgs) {
  const q = h("input", { type: "search", name: "q", value: params.get("q") || "", autocomplete: "off" });
  const org = h("select", { name: "organisation_id" }, options(orgs.map((o) => [o.id, o.name]), params.get("organisation_id"), { any: t("all") }));
  const roles = [...new Set(orgs.flatMap((o) => ROLES_BY_KIND[o.kind] || []))];
  const role = h("select", { name: "role" }, options(roles.map((r) => [r, t(`roles.${r}`)]), params.get("role"), { any: t("all") }));
  const active = h("select", { name: "active" }, options([["true", t("activeOnly")], ["false", t("inactiveOnly")]], params.get("active"), { any: t("all") }));
  return h("form.filters", { id: "user-filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, el] of [["q", q], ["organisation_id", org], ["role", role], ["active", active]]) if (el.value) p.set(k, el.value.trim());
    location.hash = `#/admin/users${p.toString() ? `?${p}` : ""}`;
  } }, field(t("search"), q, null), orgs.length > 1 ? field(t("organisation"), org) : null, field(t("role"), role),
  field(t("status"), active), h("button", { type: "submit" }, t("filter")));
}

async function command(button, path, body, text) {
  button.disabled = true;
  try {
    await api(path, { method: body === undefined ? "POST" : "PATCH", body });
    state.flash = { text, kind: "ok" };
    await rerender();
  } catch (e) { say(problemText(e), "error"); button.disabled = false; }
}

function roleCell(u, org) {
  const roles = grantable(org?.kind);
  if (!u.active || roles.length < 2 || u.id === state.me.id) return h("td", roleLabel(u.role, org?.kind));
  const select = h("select", { "aria-label": t("roleOfUser").replace("{name}", u.name || u.email) },
    options(roles.map((r) => [r, roleLabel(r, org?.kind)]), u.role));
  const save = h("button", { type: "button", hidden: true, onclick: () => command(save, `/api/v1/admin/users/${u.id}`,
    { role: select.value }, t("roleChanged").replace("{name}", u.name || u.email)) }, t("save"));
  select.addEventListener("change", () => { save.hidden = select.value === u.role; });
  return h("td.role-cell", select, " ", save);
}

function userActions(u) {
  const who = u.name || u.email;
  if (u.id === state.me.id) return h("td", h("span.muted", t("itsYou")));
  const invite = u.active && !u.password_set && !u.oidc_linked
    ? h("button", { type: "button", onclick: (e) => command(e.target, `/api/v1/admin/users/${u.id}/invitation`, undefined,
      t("invitationSent").replace("{email}", u.email)) }, t("resendInvitation")) : null;
  const toggle = u.active
    ? confirmButton(t("deactivate"), t("deactivateConfirm").replace("{name}", who), t("deactivateYes"),
      () => command(document.activeElement, `/api/v1/admin/users/${u.id}/deactivate`, undefined, t("deactivated").replace("{name}", who)))
    : h("button", { type: "button", onclick: (e) => command(e.target, `/api/v1/admin/users/${u.id}/reactivate`, undefined,
      t("reactivated").replace("{name}", who)) }, t("reactivate"));
  return h("td.actions-cell", invite, toggle);
}

function usersTable(users, orgsById) {
  if (!users.length) return h("p", t("none"));
  return h("div.table-scroll", h("table.list", { id: "users-table" },
    h("thead", h("tr", [t("name"), t("emailAddress"), t("organisation"), t("role"), t("status"), t("lastSignIn"), ""].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", users.map((u) => {
      const org = u.organisation || orgsById.get(u.organisation_id);
      const st = !u.active ? "inactive" : !u.password_set && !u.oidc_linked ? "invited" : "active";
      return h("tr", { "data-user-id": u.id, "data-email": u.email, class: `user-${st}` },
        h("td", u.name || "–"), h("td", u.email), h("td", org?.name || "–"), roleCell(u, org),
        h("td", h("span", { class: `badge user-badge-${st}` }, t(`userState.${st}`))),
        h("td", fmtTime(u.last_sign_in_at)), userActions(u));
    }))));
}

function inviteForm(orgs) {
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off", spellcheck: "false" });
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const org = h("select", { name: "organisation_id", required: true }, options(orgs.map((o) => [o.id, o.name]), state.me.organisation.id));
  const role = h("select", { name: "role", required: true });
  const fillRoles = () => {
    const kind = orgs.find((o) => o.id === org.value)?.kind;
    role.replaceChildren(...options(grantable(kind).map((r) => [r, roleLabel(r, kind)]), grantable(kind)[0]));
  };
  org.addEventListener("change", fillRoles);
  fillRoles();
  const err = h("p.error", { role: "alert" });
  const submit = h("button.primary", { type: "submit" }, t("invite"));
  return h("form.card", { id: "invite-form", onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    err.textContent = "";
    try {
      await api("/api/v1/admin/users", { method: "POST",
        body: { email: email.value.trim(), name: name.value.trim(), role: role.value, organisation_id: org.value } });
      state.flash = { text: t("invitationSent").replace("{email}", email.value.trim()), kind: "ok" };
      await rerender();
    } catch (ex) { err.textContent = problemText(ex); submit.disabled = false; }
  } }, h("h2", t("inviteTitle")), h("p.muted", t("inviteHelp")),
  h("div.row", field(t("name"), name), field(t("emailAddress"), email)),
  h("div.row", orgs.length > 1 ? field(t("organisation"), org) : null, field(t("role"), role)), err, submit);
}

export async function usersView(params) {
  const orgs = await myOrganisations();
  const query = new URLSearchParams([...params].filter(([, v]) => v));
  query.set("limit", "500");
  const page = await get(`/api/v1/admin/users?${query}`);
  const users = items(page);
  const orgsById = new Map(orgs.map((o) => [o.id, o]));
  return [h("section.pane.wide.admin", h("h1", t("adminUsers")),
    filtersForm(params, orgs), h("p.muted", { id: "users-count" }, t("usersCount").replace("{n}", page.total ?? users.length)),
    usersTable(users, orgsById), inviteForm(orgs))];
}

// --- organisations ----------------------------------------------------------------------------------------------

function orgFields(o = {}) {
  const name = h("input", { name: "name", required: true, maxlength: 300, value: o.name || "", autocomplete: "organization" });
  const email = h("input", { type: "email", name: "email", value: o.email || "", autocomplete: "off" });
  const phone = h("input", { type: "tel", name: "phone", value: o.phone || "", autocomplete: "off" });
  const address = h("textarea", { name: "address", rows: 2 }, o.address || "");
  // An empty field clears the value; only tenant admins rename an organisation (its name is on decisions).
  const read = () => ({ ...(isTenantAdmin() ? { name: name.value.trim() } : {}), email: email.value.trim(),
    phone: phone.value.trim() || null, address: address.value.trim() || null });
  name.readOnly = !isTenantAdmin() && Boolean(o.id);
  return { read, nodes: [h("div.row", field(t("name"), name), field(t("functionalMailbox"), email, t("functionalMailboxHelp"))),
    h("div.row", field(t("phone"), phone), field(t("address"), address))] };
}

function orgForm(o, { create } = {}) {
  const fields = orgFields(o);
  const kind = h("select", { name: "kind" }, options(ORG_KINDS.map((k) => [k, t(`orgKinds.${k}`)]), "operator"));
  const err = h("p.error", { role: "alert" });
  const submit = h("button.primary", { type: "submit" }, create ? t("create") : t("save"));
  return h("form", { class: create ? "card" : "org-edit", id: create ? "org-create" : null, onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    err.textContent = "";
    try {
      if (create) {
        const body = { kind: kind.value, ...fields.read() };
        await api("/api/v1/admin/organisations", { method: "POST", body: { ...body, email: body.email || null } });
      }
      else await api(`/api/v1/admin/organisations/${o.id}`, { method: "PATCH", body: fields.read() });
      state.flash = { text: (create ? t("orgCreated") : t("orgSaved")).replace("{name}", fields.read().name || o.name), kind: "ok" };
      await rerender();
    } catch (ex) { err.textContent = problemText(ex); submit.disabled = false; }
  } }, create ? [h("h2", t("orgCreate")), field(t("orgKindLabel"), kind)] : null, fields.nodes, err, submit);
}

function orgRow(o) {
  const edit = h("details.org-details", h("summary", t("edit")), orgForm(o));
  return h("tr", { "data-org-id": o.id },
    h("td", o.name), h("td", t(`orgKinds.${o.kind}`)), h("td", o.email || "–"), h("td", o.phone || "–"), h("td", edit));
}

export async function organisationsView() {
  const orgs = await myOrganisations();
  return [h("section.pane.wide.admin", h("h1", isTenantAdmin() ? t("adminOrgs") : t("adminOwnOrg")),
    h("p.muted", t("orgsHelp")),
    h("div.table-scroll", h("table.list", { id: "orgs-table" },
      h("thead", h("tr", [t("name"), t("orgKindLabel"), t("functionalMailbox"), t("phone"), ""].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", orgs.map(orgRow)))),
    isTenantAdmin() ? orgForm({}, { create: true }) : null)];
}

// --- security events --------------------------------------------------------------------------------------------

const localInput = (iso) => (iso ? new Date(new Date(iso) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : "");

function eventFilters(params, users) {
  const kind = h("select", { name: "kind" }, options(EVENT_KINDS.map((k) => [k, t(`eventKind.${k}`)]), params.get("kind"), { any: t("all") }));
  const user = h("select", { name: "user_id" }, options(users.map((u) => [u.id, `${u.name || u.email} <${u.email}>`]), params.get("user_id"), { any: t("all") }));
  const since = h("input", { type: "datetime-local", name: "since", value: localInput(params.get("since")) });
  const until = h("input", { type: "datetime-local", name: "until", value: localInput(params.get("until")) });
  return h("form.filters", { id: "event-filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (kind.value) p.set("kind", kind.value);
    if (user.value) p.set("user_id", user.value);
    if (since.value) p.set("since", new Date(since.value).toISOString());
    if (until.value) p.set("until", new Date(until.value).toISOString());
    location.hash = `#/admin/security${p.toString() ? `?${p}` : ""}`;
  } }, field(t("eventKindLabel"), kind), field(t("user"), user), field(t("since"), since), field(t("until"), until),
  h("button", { type: "submit" }, t("filter")));
}

const detailText = (d) => Object.entries(d || {}).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join("; ");

function eventRows(events, usersById) {
  const person = (id, email) => (id && usersById.get(id) ? usersById.get(id).name || usersById.get(id).email : email || (id ? id.slice(0, 8) : "–"));
  return events.map((ev) => h("tr", { "data-event-id": ev.id, class: `event-${ev.kind}` },
    h("td", fmtTime(ev.at)), h("td", h("span", { class: `badge ev-${ev.kind}` }, t(`eventKind.${ev.kind}`))),
    h("td", person(ev.user_id, ev.email)), h("td", ev.actor_id ? person(ev.actor_id) : "–"),
    h("td", ev.client_ip || "–"), h("td.detail", detailText(ev.detail))));
}

export async function securityView(params) {
  const users = items(await get("/api/v1/admin/users?limit=500")).sort((a, b) => (a.name || a.email).localeCompare(b.name || b.email, "de"));
  const usersById = new Map(users.map((u) => [u.id, u]));
  const query = new URLSearchParams([...params].filter(([k, v]) => v && ["kind", "user_id", "since", "until"].includes(k)));
  query.set("limit", "50");
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, t("loadMore"));
  let before = null;
  const load = async () => {
    const q = new URLSearchParams(query);
    if (before) q.set("before_id", before);
    const page = await get(`/api/v1/admin/security-events?${q}`);
    body.append(...eventRows(page.items || [], usersById));
    before = page.next_before_id;
    more.hidden = !before;
    if (!body.children.length) body.append(h("tr", h("td", { colspan: 6 }, t("none"))));
  };
  more.addEventListener("click", () => load().catch((e) => say(problemText(e), "error")));
  await load();
  return [h("section.pane.wide.admin", h("h1", t("adminSecurity")), h("p.muted", t("securityHelp")), eventFilters(params, users),
    h("div.table-scroll", h("table.list", { id: "events-table" },
      h("thead", h("tr", [t("when"), t("eventKindLabel"), t("user"), t("actor"), t("address"), t("details")].map((x) => h("th", { scope: "col" }, x)))),
      body)), h("p", more))];
}
