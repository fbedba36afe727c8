// Small helpers shared by the views: building DOM nodes (text only, never HTML from
// data, so nothing a saga holds can run as markup) and formatting times and durations.

/** An element with attributes (`class`, `data-*`, `title`, ...) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A status badge (`completed`, `rolled_back`, ...). */
export function badge(status) {
  return el("span", { class: `status status-${status || "none"}`, text: (status || "–").replace(/_/g, " ") });
}

/** `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m - h * 60} min`;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local `HH:MM:SS.mmm`. */
export function clock(iso) {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Local `YYYY-MM-DD HH:MM:SS`. */
export function dateTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `97.5 %`. */
export function percent(rate) {
  if (rate === null || rate === undefined) return "–";
  const value = rate * 100;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} %`;
}

/** Calls `f` once, `ms` after the last of a burst of calls. */
export function debounce(f, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => f(...args), ms);
  };
}

/** Whether a saga status is an end (nothing happens until a replay). */
export function terminal(status) {
  return ["completed", "rolled_back", "rejected", "compensation_failed"].includes(status);
}
