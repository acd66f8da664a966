// hagate console: vanilla JS, no build step. Every value from the server goes in with
// textContent (never innerHTML), and the page holds no data until /api/me says who we are.
"use strict";

const $ = (sel) => document.querySelector(sel);
let me = null;            // {user, role, csrf}
let source = null;        // EventSource
let lastDevicesRev = -1, lastAccessRev = -1;
let deviceCursor = [""];  // stack of "after" cursors, one per page shown
let deviceNext = null;
let lastView = null;      // re-rendered every few seconds so that "ago" stays true
setInterval(() => { if (me && lastView) renderCluster(lastView); }, 5000);

function el(tag, props, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node[k] = v;
  }
  for (const kid of kids) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

async function api(path, options) {
  const opts = Object.assign({credentials: "same-origin", headers: {}}, options || {});
  if (opts.body !== undefined) {
    opts.method = opts.method || "POST";
    opts.headers["Content-Type"] = "application/json";
    if (me) opts.headers["X-CSRF-Token"] = me.csrf;
    opts.body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { data = {error: res.statusText}; }
  if (res.status === 401 && path !== "/api/login") showLogin();
  return {status: res.status, data};
}

function ago(at) {
  if (!at) return "-";
  const s = Math.max(0, Date.now() / 1000 - at);
  if (s < 120) return s.toFixed(0) + " s";
  if (s < 7200) return (s / 60).toFixed(0) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(0) + " d";
}
function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
function clock(at) { return new Date(at * 1000).toLocaleTimeString(); }
function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

// -- login ---------------------------------------------------------------------------
function showLogin() {
  me = null;
  if (source) { source.close(); source = null; }
  for (const s of document.querySelectorAll(".page")) s.hidden = true;
  for (const id of ["#nodes", "#timeline", "#devices tbody", "#access tbody", "#actions"]) {
    $(id).replaceChildren();
  }
  $("#tabs").hidden = true;
  $("#whoami").hidden = true;
  $("#login").hidden = false;
  document.body.dataset.state = "login";
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  const {status, data} = await api("/api/login", {
    body: {user: $("#login-user").value, password: $("#login-password").value},
  });
  $("#login-password").value = "";
  if (status !== 200) { $("#login-error").textContent = data.error || ("error " + status); return; }
  me = data;
  start();
});

$("#logout").addEventListener("click", async () => {
  await api("/api/logout", {body: {}});
  showLogin();
});

// -- pages ---------------------------------------------------------------------------
function tab() { return (location.hash || "#cluster").slice(1); }
function showTab() {
  if (!me) return;
  const name = ["cluster", "devices", "access"].includes(tab()) ? tab() : "cluster";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + name;
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.tab === name);
  }
  if (name === "access") loadAccess();
  if (name === "devices") loadDevices();
}
window.addEventListener("hashchange", showTab);

function start() {
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  $("#whoami").hidden = false;
  $("#me").textContent = me.user + " (" + me.role + ")";
  $("#operator-tools").hidden = me.role !== "operator";
  document.body.dataset.state = "app";
  document.body.dataset.role = me.role;
  showTab();
  connect();
}

function connect() {
  if (source) source.close();
  source = new EventSource("/api/events");
  source.addEventListener("cluster", (ev) => {
    $("#live").textContent = "live";
    $("#live").className = "badge on";
    const view = JSON.parse(ev.data);
    lastView = view;
    renderCluster(view);
    if (view.devices_rev !== lastDevicesRev) { lastDevicesRev = view.devices_rev; loadDevices(); }
    if (view.access_rev !== lastAccessRev) {
      lastAccessRev = view.access_rev;
      if (tab() === "access") loadAccess();
    }
  });
  source.addEventListener("error", async () => {
    $("#live").textContent = "reconnecting";
    $("#live").className = "badge";
    const {status} = await api("/api/me");
    if (status === 401 && source) { source.close(); source = null; }
  });
}

// -- cluster -------------------------------------------------------------------------
function renderCluster(view) {
  const cards = view.nodes.map((n) => {
    const card = el("article", {class: "card", "data-node": n.name});
    const insts = (n.vrrp.instances || []);
    const top = insts.length ? insts[0].state : (n.vrrp.ok ? "?" : "DOWN");
    card.dataset.state = top;
    card.append(el("h3", {}, n.name, " ", el("span", {class: "state s-" + top}, top)));
    if (!n.vrrp.ok) {
      card.append(el("p", {class: "error"}, "VRRP: " + (n.vrrp.error || "down")));
      if (n.vrrp.last_ok) card.append(el("p", {}, "last answered at " + clock(n.vrrp.last_ok)));
    }
    for (const i of insts) {
      const last = i.last_transition || {};
      const dl = el("dl", {class: "inst", "data-instance": i.name});
      const row = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, v)); };
      row("instance", i.name + " (VRID " + i.vrid + " on " + i.interface + ", v" + i.version + ")");
      row("state", i.state);
      row("priority", i.effective_priority + " (base " + i.base_priority + ")");
      row("master", i.master || "-");
      row("VIPs", (i.vips || []).join(", ") || "-");
      const scripts = (i.scripts || []).map((s) => s.name + ": " + s.status +
        " (weight " + s.weight + ")");
      row("scripts", scripts.join("; ") || "-");
      row("last change", last.at ? (last.old + " \u2192 " + last.new + ", " + ago(last.at) +
        " ago: " + (last.reason || "")) : "-");
      card.append(dl);
    }
    const g = n.gateway;
    card.append(el("p", {class: g.ok ? "gw" : "gw error"}, g.ok ?
      ("gateway: " + plural(g.online, "device") + " online, " + plural(g.streams, "stream") +
       (g.health && !g.health.ok ? " (UNHEALTHY)" : "")) :
      ("gateway: " + (g.error || "not configured"))));
    return card;
  });
  $("#nodes").replaceChildren(...cards);
  const items = view.timeline.map((e) => el("li", {class: "ev " + e.kind, "data-kind": e.kind,
      "data-node": e.node},
    el("time", {}, clock(e.at)), " ",
    // a failover's heading, then its outage and its devices' return as highlights
    el("strong", {}, e.kind === "failover" ?
      "failover " + e.from_node + " -> " + e.node + " (" + e.instance + ")" : e.text),
    e.kind === "failover" && e.outage_s !== null ?
      el("span", {class: "outage"}, ", outage " + e.outage_s.toFixed(2) + " s") : null,
    e.kind === "failover" && e.devices_expected ?
      el("span", {class: "outage back", "data-back": String(e.devices_back_s !== null)},
        ", devices back " + e.devices_back + "/" + e.devices_expected +
        (e.devices_back_s !== null ? " after " + e.devices_back_s.toFixed(2) + " s" : "\u2026"))
      : null,
    e.reason ? el("span", {class: "reason"}, " \u2014 " + e.reason) : null));
  $("#timeline").replaceChildren(...items);
}

// -- devices -------------------------------------------------------------------------
async function loadDevices() {
  if (!me) return;
  const params = new URLSearchParams({
    q: $("#device-q").value, status: $("#device-status").value,
    after: deviceCursor[deviceCursor.length - 1], limit: "50",
  });
  const {status, data} = await api("/api/devices?" + params);
  if (status !== 200) return;
  deviceNext = data.next;
  const rows = data.devices.map((d) => {
    const routes = Object.entries(d.routes || {}).map(([k, v]) => k + " \u2192 " + v).join(", ");
    const op = me.role === "operator";
    const acts = [
      op && d.online ?
        el("button", {type: "button", class: "kick", on: {click: () => kickDevice(d)}}, "kick") : "",
      op && !d.banned ?
        el("button", {type: "button", class: "kick ban", on: {click: () => banDevice(d)}}, "ban") : "",
      op && d.banned ?
        el("button", {type: "button", class: "unban", on: {click: () => unbanDevice(d)}}, "unban") : "",
    ];
    const state = d.banned ? "banned " + Math.ceil(d.banned.left_s / 60) + " min" :
      (d.online ? "online" : "offline");
    return el("tr", {"data-device": d.name, "data-online": String(d.online), "data-node": d.node},
      el("td", {}, d.name), el("td", {class: d.banned ? "error" : (d.online ? "on" : "off")}, state),
      el("td", {}, d.node + (d.also ? " (also " + d.also.join(", ") + ")" : "")),
      el("td", {}, d.online ? ago(d.since) : "seen " + ago(d.last_seen) + " ago"),
      el("td", {}, routes || "-"), el("td", {}, d.streams),
      el("td", {}, bytes(d.bytes_in) + " / " + bytes(d.bytes_out)),
      el("td", {class: d.last_error ? "error" : ""}, d.last_error || ""), el("td", {}, ...acts));
  });
  $("#devices tbody").replaceChildren(...rows);
  const counts = Object.entries(data.nodes || {}).map(([n, c]) =>
    n + ": " + c.online + " online of " + c.known);
  const errs = Object.entries(data.errors || {}).map(([n, e]) => n + ": " + e);
  $("#device-counts").textContent = "(" + counts.concat(errs).join("; ") + ")";
  $("#devices-page").textContent = "page " + deviceCursor.length;
  $("#devices-prev").disabled = deviceCursor.length <= 1;
  $("#devices-next").disabled = !deviceNext;
}

async function kickDevice(d) {
  if (!confirm("Close " + d.name + "'s session on " + d.node + "? Its agent will reconnect.")) return;
  const {status, data} = await api("/api/actions/kick", {body: {device: d.name, node: d.node}});
  if (status !== 200) alert(data.error || ("error " + status));
  loadDevices();
}

async function banDevice(d) {
  const minutes = Number(prompt("Keep " + d.name + " out of every node for how many minutes " +
    "(1-1440)? Its session is closed and its agent refused until then.", "60"));
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) return;
  const body = {device: d.name, node: d.node, ban: minutes * 60};
  const {status, data} = await api("/api/actions/kick", {body});
  if (status !== 200) alert(data.error || ("error " + status));
  loadDevices();
}

async function unbanDevice(d) {
  const {status, data} = await api("/api/actions/unban", {body: {device: d.name}});
  if (status !== 200) alert(data.error || ("error " + status));
  loadDevices();
}

$("#device-filter").addEventListener("submit", (ev) => {
  ev.preventDefault(); deviceCursor = [""]; loadDevices();
});
$("#devices-next").addEventListener("click", () => {
  if (deviceNext) { deviceCursor.push(deviceNext); loadDevices(); }
});
$("#devices-prev").addEventListener("click", () => {
  if (deviceCursor.length > 1) { deviceCursor.pop(); loadDevices(); }
});

// -- access --------------------------------------------------------------------------
async function loadAccess() {
  if (!me) return;
  const params = new URLSearchParams({
    device: $("#access-device").value, identity: $("#access-identity").value,
    result: $("#access-result").value, limit: "200",
  });
  const {status, data} = await api("/api/access?" + params);
  if (status !== 200) return;
  const rows = data.entries.slice().reverse().map((e) => el("tr",
    {class: e.result === "ok" || e.result === "upgraded" ? "" : "denied"},
    el("td", {}, clock(e.time)), el("td", {}, e.node), el("td", {}, e.identity),
    el("td", {}, e.via ? e.client + " via " + e.via : e.client), el("td", {}, e.device + "/" + e.service), el("td", {}, e.route),
    el("td", {}, e.result + (e.status ? " " + e.status : "")), el("td", {}, e.rule),
    el("td", {}, bytes(e.bytes_in) + " / " + bytes(e.bytes_out))));
  $("#access tbody").replaceChildren(...rows);
  const acts = await api("/api/actions");
  if (acts.status === 200) {
    $("#actions").replaceChildren(...acts.data.actions.slice().reverse().map((a) => el("li", {},
      clock(a.time) + " " + a.user + " " + a.action + " " +
      JSON.stringify(Object.fromEntries(Object.entries(a).filter(([k]) =>
        !["time", "user", "action"].includes(k)))))));
  }
}
$("#access-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadAccess(); });

$("#can-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const params = new URLSearchParams({
    who: $("#can-who").value, device: $("#can-device").value,
    service: $("#can-service").value, route: $("#can-route").value, from: $("#can-from").value,
  });
  const {status, data} = await api("/api/can?" + params);
  const out = $("#can-answer");
  if (status !== 200) { out.className = "error"; out.textContent = data.error; return; }
  out.className = data.allowed ? "allowed" : "denied";
  out.textContent = (data.allowed ? "ALLOWED: " : "REFUSED (" + data.status + "): ") +
    data.reason + " \u2014 " + data.rule;
});

$("#revoke-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const {status, data} = await api("/api/actions/revoke-token", {body: {jti: $("#revoke-jti").value}});
  $("#revoke-answer").textContent = status === 200 ?
    (data.already ? "already revoked" : "revoked " + data.revoked.join(", ")) : data.error;
});

// -- boot ----------------------------------------------------------------------------
(async () => {
  const {status, data} = await api("/api/me");
  if (status === 200) { me = data; start(); } else showLogin();
})();
