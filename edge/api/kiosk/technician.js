// The technician's side: unlocked with the local API key, which lives only in this tab's
// sessionStorage and travels in a header, never in the page or a URL.
"use strict";
const KEY_STORE = "booth-key";
const NAME_STORE = "booth-technician";
const STATE_MS = 2000;
const LISTS_MS = 5000;
const GRADE_LETTERS = ["A", "B", "C", "D", "E"];

const Tech = {
  timers: [],

  key() {
    return sessionStorage.getItem(KEY_STORE);
  },

  call(path, options = {}) {
    const headers = { ...(options.headers || {}), "X-Booth-Key": this.key() || "" };
    return api(path, { ...options, headers });
  },

  start() {
    $("tech-toggle").addEventListener("click", () => this.toggle());
    $("tech-unlock").addEventListener("click", () => this.unlock($("tech-key").value));
    $("tech-key").addEventListener("keydown", (e) => {
      if (e.key === "Enter") this.unlock($("tech-key").value);
    });
    $("tech-lock").addEventListener("click", () => this.lock());
  },

  toggle() {
    const show = $("tech").hidden;
    $("tech").hidden = !show;
    $("customer").hidden = show;
    $("tech-toggle").textContent = show ? "Customer" : "Technician";
    // Back to the customer's view, the panel locks: the next person at the screen is a customer.
    if (!show) this.lock();
  },

  async unlock(key) {
    sessionStorage.setItem(KEY_STORE, key);
    $("tech-key").value = "";
    try {
      await this.refreshState();
    } catch (err) {
      sessionStorage.removeItem(KEY_STORE);
      $("unlock-error").textContent = err.message;
      $("unlock-error").hidden = false;
      return;
    }
    $("unlock-error").hidden = true;
    $("unlock").hidden = true;
    $("tech-panels").hidden = false;
    this.refreshLists();
    this.stopRefresh();
    this.timers = [
      setInterval(() => this.refreshState().catch((err) => this.showStateError(err)), STATE_MS),
      setInterval(() => this.refreshLists(), LISTS_MS),
    ];
  },

  lock() {
    sessionStorage.removeItem(KEY_STORE);
    this.stopRefresh();
    $("tech-panels").hidden = true;
    $("unlock").hidden = false;
  },

  stopRefresh() {
    this.timers.forEach(clearInterval);
    this.timers = [];
  },

  showStateError(err) {
    $("tech-state").replaceChildren(el("dt", {}, "booth"), el("dd", { class: "bad" }, err.message));
  },

  async refreshState() {
    const s = await this.call("/api/tech/state");
    const cloud = s.cloud || {};
    const rows = [
      ["booth", `${s.booth_id}, ${s.activity}`, true],
      ["cameras", Object.entries(s.cameras || {}).map(([n, v]) => `${n}: ${v}`).join(", "),
        Object.values(s.cameras || {}).every((v) => v === "ready")],
      ["model", s.model ? `${s.model.name} ${s.model.version} (${s.model.sha256.slice(0, 12)})` : "-", !!s.model],
      ["broker", !s.broker.enabled ? "off" : s.broker.connected ? "connected" : "DISCONNECTED",
        !s.broker.enabled || s.broker.connected],
      ["cloud", cloud.mode === "off" || !cloud.mode ? `off (${cloud.reason || "not configured"})`
        : `${cloud.reachability}${cloud.last_error ? ": " + cloud.last_error : ""}`,
        cloud.mode === "off" || !cloud.mode || cloud.reachability === "reachable"],
      ["outboxes", `store system ${s.outbox_depth.mqtt}, cloud ${s.outbox_depth.cloud} waiting`, true],
      ["disk free", `${s.disk_free_mb} MB`, true],
      ["uptime", `${Math.floor(s.uptime_s / 3600)} h ${Math.floor((s.uptime_s % 3600) / 60)} min`, true],
      ["last error", s.last_error ? s.last_error.message : "none", !s.last_error],
    ];
    const list = $("tech-state");
    list.replaceChildren();
    for (const [name, value, ok] of rows) {
      list.append(el("dt", {}, name), el("dd", { class: ok ? "" : "bad", "data-item": name }, value));
    }
    this.showCameras(Object.keys(s.cameras || {}));
  },

  async refreshLists() {
    try {
      const [reviews, page, events] = await Promise.all([
        this.call("/api/tech/reviews"),
        this.call("/api/sessions?limit=50"),
        this.call("/api/tech/events"),
      ]);
      this.showReviews(reviews);
      this.showSessions(page.sessions);
      this.showEvents(events);
    } catch (err) {
      this.showStateError(err);
    }
  },

  showReviews(reviews) {
    const box = $("reviews");
    const open = new Set(reviews.map((r) => r.sessionId));
    // A decided card stays, saying what was decided, until the next visit.
    for (const card of [...box.children]) {
      if (card.dataset.session && !open.has(card.dataset.session) && !card.classList.contains("decided")) card.remove();
    }
    if (!reviews.length && !box.children.length) box.append(el("p", { class: "hint empty" }, "Nothing to review"));
    if (reviews.length) box.querySelector(".empty")?.remove();
    for (const r of reviews) {
      if (box.querySelector(`[data-session="${r.sessionId}"]`)) continue;
      box.append(this.reviewCard(r));
    }
  },

  reviewCard(r) {
    const card = el("div", { class: "review-card", "data-session": r.sessionId });
    card.append(el("p", {}, el("strong", {}, `Provisional ${r.provisional_grade}`), ` — ${r.reason}`));
    const photos = el("div", { class: "photos" });
    for (const image of r.images) {
      photos.append(zoomable(imageUrl(image.path), `${image.section} ${image.kind}`));
    }
    card.append(photos);
    const select = el("select", { "aria-label": "grade" });
    for (const g of GRADE_LETTERS) {
      const option = el("option", { value: g }, g === r.provisional_grade ? `${g} (provisional)` : g);
      if (g === r.provisional_grade) option.selected = true;
      select.append(option);
    }
    const name = el("input", { placeholder: "your name", "aria-label": "technician" });
    name.value = sessionStorage.getItem(NAME_STORE) || "";
    const note = el("input", { placeholder: "note (what you saw)", "aria-label": "note" });
    const save = el("button", { type: "button", class: "decide" });
    const label = () => {
      save.textContent = select.value === r.provisional_grade ? `Confirm ${select.value}` : `Set grade ${select.value}`;
    };
    label();
    select.addEventListener("change", label);
    const error = el("p", { class: "error", hidden: "" });
    save.addEventListener("click", async () => {
      if (!name.value.trim()) {
        error.textContent = "Enter your name first";
        error.hidden = false;
        return;
      }
      sessionStorage.setItem(NAME_STORE, name.value.trim());
      try {
        await this.call(`/api/tech/reviews/${r.sessionId}`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ grade: select.value, technician: name.value.trim(), note: note.value }),
        });
        card.replaceChildren(el("p", { class: "good" }, `Graded ${select.value} by ${name.value.trim()}`));
        card.classList.add("decided");
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    });
    card.append(el("div", { class: "row" }, select, name, note, save), error);
    return card;
  },

  showSessions(sessions) {
    const table = $("sessions");
    table.replaceChildren(el("tr", {}, ...["time", "outcome", "grade", "source", "capture", "grading", "store", "cloud"]
      .map((h) => el("th", {}, h))));
    for (const s of sessions) {
      const t = (s.result && s.result.timings_ms) || {};
      const ms = (v) => (v === undefined ? "-" : `${Math.round(v)} ms`);
      const grade = s.grade || (s.provisional_grade ? `${s.provisional_grade}?` : "-");
      table.append(el("tr", {},
        el("td", {}, new Date(s.created_at * 1000).toLocaleTimeString()),
        el("td", {}, s.reviewed_by ? `${s.status} (reviewed by ${s.reviewed_by})` : s.status),
        el("td", {}, grade), el("td", {}, s.source), el("td", {}, ms(t.capture)), el("td", {}, ms(t.total)),
        el("td", {}, s.delivery.mqtt || "-"), el("td", {}, s.delivery.cloud || "-")));
    }
  },

  showEvents(events) {
    $("events").replaceChildren(...events.map((e) => {
      const { type, time, booth_id: _, ...rest } = e;
      const details = Object.entries(rest).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(" ");
      return el("li", {}, el("strong", {}, type), ` ${time} ${details}`);
    }));
  },

  showCameras(names) {
    const box = $("cameras");
    if (box.dataset.names === names.join(",")) return;
    box.dataset.names = names.join(",");
    box.replaceChildren();
    for (const name of names) {
      const out = el("div", { class: "shot" });
      const shoot = el("button", { type: "button" }, `Test shot ${name}`);
      const calibrate = el("button", { type: "button", class: "quiet" }, `Calibrate ${name} (booth empty)`);
      shoot.addEventListener("click", async () => {
        out.replaceChildren(el("p", { class: "hint" }, "shooting…"));
        try {
          const shot = await this.call(`/api/tech/cameras/${encodeURIComponent(name)}/test-shot`, { method: "POST" });
          out.replaceChildren(el("p", { class: shot.ok ? "good" : "bad" }, shot.verdict), zoomable(shot.preview, `${name} test shot`));
        } catch (err) {
          out.replaceChildren(el("p", { class: "bad" }, err.message));
        }
      });
      calibrate.addEventListener("click", async () => {
        out.replaceChildren(el("p", { class: "hint" }, "calibrating…"));
        try {
          const done = await this.call(`/api/tech/cameras/${encodeURIComponent(name)}/calibrate`, {
            method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
          });
          out.replaceChildren(el("p", { class: "good" }, `Empty booth stored for ${done.camera}`));
        } catch (err) {
          out.replaceChildren(el("p", { class: "bad" }, err.message));
        }
      });
      box.append(el("div", { class: "camera" }, el("div", { class: "row" }, shoot, calibrate), out));
    }
  },
};

document.addEventListener("DOMContentLoaded", () => Tech.start());
