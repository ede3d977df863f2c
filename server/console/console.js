// The roomhub live room console. Plain ES module, no build step: it drives the hub through the
// TypeScript client's browser bundle, over the WebSocket URL the hub rendered into the page.
// The key and token live in this module's memory only: never in a URL, never in storage.
import { RoomClient, RoomError } from "./roomhub-client.js";

const $ = (id) => document.getElementById(id);
const WS_URL = document.body.dataset.wsUrl;
const PAGE = 20; // rooms per page

let client = null;
let current = null; // the id of the room shown and watched
let roomsAfter = null; // `after` of the page shown
let roomsNext = null;

// --- small DOM helpers (textContent only: every value shown comes from the hub) ---

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function ids(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function showError(err) {
  const box = $("error");
  box.replaceChildren();
  if (err instanceof RoomError || (err && typeof err.code === "number")) {
    box.append(el("strong", { class: "code" }, `${err.code} ${err.reason ?? ""}`.trim()), " ", err.message);
    if (err.field) box.append(el("span", { class: "muted" }, ` (field: ${err.field})`));
  } else {
    box.append(el("strong", { class: "code" }, "error"), " ", String(err?.message ?? err));
  }
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

// Runs an action; its error is shown with code and message, and the room is re-read.
async function act(fn) {
  clearError();
  try {
    await fn();
    if (current) await showRoom(current, { watch: false });
  } catch (err) {
    showError(err);
  }
}

function formatValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// --- sign in ---

async function signIn(key, token) {
  clearError();
  try {
    const c = await RoomClient.connect(WS_URL, { key, token, encoding: "json" });
    client = c;
  } catch (err) {
    showError(err);
    return;
  }
  client.on("state", (state) => setState(state));
  client.on("system", (msg) => onSystem(msg));
  client.on("resync", ({ room }) => {
    if (room === current) showRoom(current, { watch: false }).catch(showError);
  });
  setState("open");
  $("who").textContent = `app ${key}`;
  $("signin").hidden = true;
  $("session").hidden = false;
  $("app").hidden = false;
  await loadRooms(null);
}

function setState(state) {
  const node = $("state");
  node.textContent = state;
  node.dataset.state = state;
}

function signOut() {
  client?.close();
  client = null;
  current = null;
  $("app").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
  $("token").value = "";
  $("feed").replaceChildren();
  $("room").hidden = true;
  $("no-room").hidden = false;
  setState("closed");
}

// --- rooms ---

async function loadRooms(after) {
  try {
    const prefix = $("prefix").value.trim();
    const args = { limit: PAGE, after };
    if (prefix) args.prefix = prefix;
    const page = await client.appRooms(args);
    roomsAfter = after;
    roomsNext = page.next;
    const list = $("rooms");
    list.replaceChildren(
      ...page.rooms.map((room) =>
        el(
          "li",
          { class: room.id === current ? "selected" : "", "data-room": room.id },
          el(
            "button",
            { type: "button", onclick: () => selectRoom(room.id) },
            el("span", { class: "room-id" }, room.id),
            el("span", { class: "muted" }, room.name ? ` ${room.name}` : ""),
            el("span", { class: "seq" }, `#${room.seq}`),
          ),
        ),
      ),
    );
    if (!page.rooms.length) list.append(el("li", { class: "muted" }, "no rooms"));
    $("more").disabled = !roomsNext;
    $("first").disabled = after === null;
  } catch (err) {
    showError(err);
  }
}

async function selectRoom(id) {
  clearError();
  if (current && current !== id) {
    const previous = current;
    client.unwatchRoom({ room: previous }).catch(showError);
  }
  current = id;
  $("feed").replaceChildren();
  for (const li of $("rooms").children) li.classList.toggle("selected", li.dataset.room === id);
  try {
    await showRoom(id, { watch: true });
  } catch (err) {
    showError(err);
  }
}

async function showRoom(id, { watch }) {
  const room = watch ? await client.watchRoom({ room: id }) : await client.getRoom({ room: id });
  if (id !== current) return;
  if (watch) $("watching").textContent = `${id} after #${room.seq}`;
  $("no-room").hidden = true;
  $("room").hidden = false;
  $("room-title").textContent = room.name ? `${room.id} · ${room.name}` : room.id;
  $("room-meta").textContent = `${room.type} · owner ${room.owner} · seq ${room.seq}`;
  const listed = $("rooms").querySelector(`li[data-room="${CSS.escape(id)}"] .seq`);
  if (listed) listed.textContent = `#${room.seq}`;
  const custom = Object.entries(room.custom ?? {});
  $("room-custom").textContent = custom.length
    ? "custom: " + custom.map(([k, v]) => `${k}=${formatValue(v)}`).join(", ")
    : "";
  const members = [];
  let after = null;
  do {
    const page = await client.listMembers({ room: id, after, limit: 500 });
    members.push(...page.members);
    after = page.next;
  } while (after && members.length < 2000);
  renderMembers(members);
  renderInvitations(room.invitations ?? []);
}

function renderMembers(members) {
  const body = $("members").tBodies[0];
  body.replaceChildren(
    ...members.map((m) => {
      const props = { ...m.props };
      for (const field of ["nickname", "level", "custom_info", "extension"]) {
        if (m[field]) props[field] = m[field];
      }
      const propText = Object.entries(props).map(([k, v]) => `${k}=${formatValue(v)}`);
      return el(
        "tr",
        { "data-member": m.id },
        el("td", { class: "member-id" }, m.id),
        el("td", {}, el("span", { class: `role role-${m.role}` }, m.role)),
        el("td", { class: "props" }, propText.join(", ")),
        el(
          "td",
          { class: "row-actions" },
          m.role === "owner"
            ? ""
            : el(
                "button",
                {
                  type: "button",
                  class: "link",
                  onclick: () => act(() => client.removeMember({ room: current, user: m.id })),
                },
                "remove",
              ),
        ),
      );
    }),
  );
}

function renderInvitations(invitations) {
  const list = $("invitations");
  list.replaceChildren(
    ...invitations.map((inv) =>
      el(
        "li",
        { "data-invitee": inv.user },
        el("span", { class: "member-id" }, inv.user),
        el("span", { class: "muted" }, ` invited by ${inv.inviter}`),
        " ",
        el(
          "button",
          {
            type: "button",
            class: "link",
            onclick: () => act(() => client.acceptInvitation({ room: current, operator: inv.user })),
          },
          "accept on behalf",
        ),
      ),
    ),
  );
  if (!invitations.length) list.append(el("li", { class: "muted" }, "none"));
}

// --- the live feed ---

function describe(msg) {
  const parts = [];
  if (msg.targets?.length) parts.push(`→ ${msg.targets.join(", ")}`);
  const changes = Object.entries(msg.changes ?? {});
  if (changes.length) parts.push(changes.map(([k, v]) => `${k}: ${formatValue(v)}`).join(", "));
  return parts.join("  ");
}

function onSystem(msg) {
  if (msg.room !== current) return;
  const item = el(
    "li",
    { class: "fresh", "data-seq": msg.seq, "data-type": msg.type },
    el("span", { class: "seq" }, `#${msg.seq}`),
    el("span", { class: "type" }, msg.type),
    el("span", { class: "sender" }, msg.sender),
    el("span", { class: "detail" }, describe(msg)),
    el("time", {}, new Date(msg.time_ms).toLocaleTimeString([], { hour12: false })),
  );
  $("feed").prepend(item);
  setTimeout(() => item.classList.remove("fresh"), 2500);
  if (msg.type === "dismissRoom") {
    $("watching").textContent = `${msg.room} dismissed`;
    loadRooms(roomsAfter);
    return;
  }
  showRoom(current, { watch: false }).catch(() => {});
}

// --- wiring ---

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    fn();
  });
}

async function ensureUsers(users) {
  for (const id of users) await client.upsertUser({ id });
}

onSubmit("signin", () => signIn($("key").value.trim(), $("token").value.trim()));
$("signout").addEventListener("click", signOut);
$("more").addEventListener("click", () => loadRooms(roomsNext));
$("first").addEventListener("click", () => loadRooms(null));
let searchTimer = null;
$("prefix").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadRooms(null), 200);
});

onSubmit("create", async () => {
  clearError();
  const room = $("create-room").value.trim();
  const owner = $("create-owner").value.trim();
  const members = ids($("create-members").value);
  const name = $("create-name").value.trim();
  try {
    await ensureUsers([owner, ...members]);
    await client.createRoom({ room, owner, members, ...(name ? { name } : {}) });
    $("create").reset();
    await loadRooms(null);
    await selectRoom(room);
  } catch (err) {
    showError(err);
  }
});

onSubmit("add", () =>
  act(async () => {
    const users = ids($("add-users").value);
    await ensureUsers(users);
    await client.addMembers({
      room: current,
      invitees: users,
      invitationRequired: $("add-invite").checked,
      systemMessage: true,
    });
    $("add").reset();
  }),
);

onSubmit("role", () =>
  act(() => {
    const operator = $("role-operator").value.trim();
    return client.updateMember({
      room: current,
      user: $("role-user").value.trim(),
      properties: { role: $("role-value").value },
      systemMessage: true,
      ...(operator ? { operator } : {}),
    });
  }),
);

onSubmit("prop", () =>
  act(() =>
    client.updateMember({
      room: current,
      user: $("prop-user").value.trim(),
      properties: { [$("prop-name").value.trim()]: parseValue($("prop-value").value) },
    }),
  ),
);

onSubmit("transfer", () =>
  act(() => client.transferRoom({ room: current, to: $("transfer-to").value.trim() })),
);

onSubmit("dismiss", () =>
  act(async () => {
    await client.dismissRoom({ room: current });
    current = null;
    $("room").hidden = true;
    $("no-room").hidden = false;
    await loadRooms(roomsAfter);
  }),
);

// Dev mode: `roomhub serve` prints /console#key=...&token=...; the fragment never leaves the
// browser. Read it, then drop it from the address bar and the history entry.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has("key") || fragment.has("token")) {
  history.replaceState(null, "", location.pathname + location.search);
  $("key").value = fragment.get("key") ?? "";
  $("token").value = fragment.get("token") ?? "";
  if ($("key").value && $("token").value) signIn($("key").value, $("token").value);
}
