// A tiny DOM helper: h("tag.class", {attrs}, ...children). Text is always set as text (no HTML injection).
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) { children.unshift(attrs); attrs = null; }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

let seq = 0;
/** A labelled form field; returns [wrapper, input]. */
export function field(label, input, help) {
  const id = input.id || `f${++seq}`;
  input.id = id;
  const parts = [h("label", { for: id }, label), input];
  if (help) { const hid = `${id}-help`; input.setAttribute("aria-describedby", hid); parts.push(h("p.help", { id: hid }, help)); }
  return h("div.field", parts);
}
