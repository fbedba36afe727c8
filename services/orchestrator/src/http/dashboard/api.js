// The orchestrator's read API as the dashboard calls it: the read token (asked once,
// kept in this tab's sessionStorage), JSON reads, Server-Sent Events read over fetch
// (so the token travels in the Authorization header, never in a URL), and replays with
// the provisioning secret the operator types for that one request.

const TOKEN_KEY = "saga-dashboard.read-token";

let asking = null;

/** The read token, asking for it when this tab has none. */
export async function token() {
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) return kept;
  if (!asking) asking = askToken().finally(() => { asking = null; });
  return asking;
}

/** Forgets the read token (a 401, or the operator asked). */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function askToken(message) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const error = dialog.querySelector(".dialog-error");
  error.hidden = !message;
  error.textContent = message || "";
  return new Promise((resolve) => {
    form.onsubmit = async (event) => {
      event.preventDefault();
      const given = form.elements.token.value.trim();
      form.elements.token.value = "";
      // Checked at once, so a mistyped token is told here, not by an empty page.
      const answer = await fetch("api/v1/stats?window=1h", {
        headers: { Authorization: `Bearer ${given}` },
      }).catch(() => null);
      if (!answer || answer.status === 401) {
        error.hidden = false;
        error.textContent = answer ? "That token is not accepted." : "The orchestrator does not answer.";
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, given);
      dialog.close();
      resolve(given);
    };
    dialog.addEventListener("cancel", (event) => event.preventDefault(), { once: true });
    if (!dialog.open) dialog.showModal();
    form.elements.token.focus();
  });
}

/** An error the API answered with (`{"error": {"code", "message"}}`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function refusal(response) {
  const body = await response.json().catch(() => ({}));
  const error = body.error || {};
  return new ApiError(response.status, error.code || "http_" + response.status,
    error.message || body.message || response.statusText);
}

/** GET `path` (relative to the page) as JSON with the read token; asks again on 401. */
export async function getJSON(path) {
  for (let tries = 0; ; tries++) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${await token()}` } });
    if (response.status === 401 && tries < 2) {
      forgetToken();
      continue;
    }
    if (!response.ok) throw await refusal(response);
    return response.json();
  }
}

/**
 * Replays saga `id` with the provisioning `secret` (used for this request only), who
 * asks and why. Resolves to `{status, body}` whatever the answer.
 */
export async function replay(id, secret, operator, reason) {
  const headers = { "Content-Type": "application/json", "X-Provisioning-Secret": secret };
  if (operator) headers["X-Operator"] = operator;
  const response = await fetch(`api/v1/sagas/${encodeURIComponent(id)}/replay`, {
    method: "POST",
    headers,
    body: JSON.stringify({ reason }),
  });
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

/**
 * Follows the Server-Sent Events of `path`: `onEvent(id, data)` for each, `onState`
 * with "live" or "retrying". Reconnects after a drop with `Last-Event-ID`, so nothing is
 * missed or repeated; a stream that ends by itself (a saga's, after its end) is not
 * reopened unless `reopen`. Returns `close()`.
 */
export function follow(path, { onEvent, onState = () => {}, lastEventId = null, reopen = true }) {
  const abort = new AbortController();
  let last = lastEventId;
  (async () => {
    while (!abort.signal.aborted) {
      let ended = false;
      try {
        const headers = { Authorization: `Bearer ${await token()}`, Accept: "text/event-stream" };
        if (last !== null) headers["Last-Event-ID"] = String(last);
        const response = await fetch(path, { headers, signal: abort.signal });
        if (response.status === 401) {
          forgetToken();
          continue;
        }
        if (!response.ok) throw await refusal(response);
        onState("live");
        await read(response.body, (id, data) => {
          if (id !== null) last = id;
          onEvent(id, data);
        });
        ended = true;
      } catch (e) {
        if (abort.signal.aborted) return;
        console.warn("event stream interrupted", e);
      }
      if (ended && !reopen) return;
      onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, ended ? 500 : 2000));
    }
  })();
  return () => abort.abort();
}

/** Reads an SSE body to its end, calling `handle(id, parsed data)` per event. */
async function read(body, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) {
        try {
          handle(id, JSON.parse(data.join("\n")));
        } catch (e) {
          console.warn("unreadable event", e);
        }
      }
    }
  }
}
