// The dashboard's entry: asks for the read token, follows every saga's live events for
// as long as the page is open, and shows the view the address names: `#/` (with
// filters: `#/?status=rolled_back&step=registration`) or `#/sagas/<id>`.

import { follow, forgetToken, token } from "./api.js";
import * as overview from "./overview.js";
import * as saga from "./saga.js";

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const sagaMatch = path.match(/^\/sagas\/([0-9a-fA-F-]{36})$/);
  document.getElementById("overview").hidden = Boolean(sagaMatch);
  document.getElementById("saga").hidden = !sagaMatch;
  if (sagaMatch) {
    saga.show(sagaMatch[1].toLowerCase());
  } else {
    saga.hide();
    overview.show(new URLSearchParams(query));
  }
  window.scrollTo(0, 0);
}

async function start() {
  overview.setUp();
  saga.setUp();
  document.getElementById("forget-token").addEventListener("click", () => {
    forgetToken();
    location.reload();
  });
  await token();
  const live = document.getElementById("live");
  let connected = false;
  follow("api/v1/events", {
    onEvent: (_, event) => overview.onEvent(event),
    onState: (state) => {
      live.dataset.state = state;
      live.textContent = state === "live" ? "live" : "reconnecting…";
      // The stream starts with what happens from now on: the list is read again once
      // it is there, so a saga begun while it connected is not missed. (Reconnections
      // resume after the last event seen.)
      if (state === "live" && !connected) {
        connected = true;
        if (!document.getElementById("overview").hidden) route();
      }
    },
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
