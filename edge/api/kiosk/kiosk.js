// The customer's side of the booth's screen: IMEI, Grade, live progress, the result.
"use strict";
const POLL_MS = 800;
// A result waiting for a technician is followed until it is decided, at this pace.
const REVIEW_POLL_MS = 3000;
// The booth unreachable this many polls in a row: the customer is told, and it is asked again.
const QUIET_POLLS = 5;
const CONFIG_RETRY_MS = 3000;
const QUEUED_NOTE = "The result is kept on the booth and goes out as soon as the connection is back.";
const FINAL = new Set(["graded", "retake", "review", "failed"]);
const SETTLED = new Set(["done", "dead", "dropped"]);

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Every answer of the API is JSON; an error is {"error": "..."}.
async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function imageUrl(path) {
  return "/api/images/" + path.split("/").map(encodeURIComponent).join("/");
}

function zoomable(src, alt) {
  const img = el("img", { src, alt, class: "zoomable" });
  img.addEventListener("click", () => {
    $("zoom").querySelector("img").src = src;
    $("zoom").hidden = false;
  });
  return img;
}

function shortReason(text) {
  return text.replace(/^Invalid request: /, "");
}

const Kiosk = {
  config: null,
  imei: "",
  following: null, // the session this screen shows; a poll of any other stops
  busy: false,
  // After the result, delivery to the store system and the cloud is followed this long at most;
  // what is still pending then is queued on the booth.
  deliveryWaitMs: 60000,

  start() {
    $("imei").addEventListener("input", () => this.checkImei());
    $("imei").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !$("grade").disabled) this.grade();
    });
    $("grade").addEventListener("click", () => this.grade());
    $("retake").addEventListener("click", () => this.grade());
    $("again").addEventListener("click", () => this.reset());
    $("zoom").addEventListener("click", () => { $("zoom").hidden = true; });
    $("imei").focus();
    this.loadConfig();
  },

  // The screen may come up before the booth does: it asks again until the booth answers.
  async loadConfig() {
    try {
      this.config = await api("/api/kiosk/config");
    } catch (err) {
      $("start-error").textContent = "The booth is not answering yet. Trying again…";
      $("start-error").hidden = false;
      setTimeout(() => this.loadConfig(), CONFIG_RETRY_MS);
      return;
    }
    $("start-error").hidden = true;
    $("booth-name").textContent = `Trade-in booth ${this.config.booth_id}`;
    this.checkImei();
  },

  checkImei() {
    // Spaces and dashes as printed on a box or a settings screen are not part of the IMEI.
    const value = $("imei").value.replace(/[\s-]/g, "");
    if (!this.config) {
      $("grade").disabled = true;
      return null;
    }
    const reason = BoothImei.check(value, this.config.imei_check);
    $("imei-hint").textContent = reason ? shortReason(reason) : "IMEI is valid";
    $("imei-hint").className = reason && value ? "hint bad" : reason ? "hint" : "hint good";
    $("grade").disabled = reason !== null;
    return reason === null ? value : null;
  },

  async grade() {
    // One request at a time: a second tap while the first is on its way would only be refused.
    if (this.busy) return;
    const imei = this.imei && !$("result").hidden ? this.imei : this.checkImei();
    if (!imei) return;
    this.busy = true;
    this.imei = imei;
    $("start-error").hidden = true;
    $("grade").disabled = true;
    $("retake").disabled = true;
    let session;
    try {
      session = await api("/api/kiosk/sessions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ imei }),
      });
    } catch (err) {
      const where = $("result").hidden ? "start-error" : "result-text";
      $(where).textContent = `The booth could not start: ${shortReason(err.message)}. Please try again.`;
      $(where).hidden = false;
      $("grade").disabled = false;
      return;
    } finally {
      this.busy = false;
      $("retake").disabled = false;
    }
    $("enter").hidden = true;
    $("result").hidden = true;
    $("progress").hidden = false;
    $("progress-note").hidden = true;
    this.following = session.sessionId;
    this.follow(session.sessionId, null, null, 0);
  },

  async follow(sessionId, finishedAt, shown, misses) {
    if (this.following !== sessionId) return;
    let view;
    try {
      view = await api(`/api/sessions/${sessionId}`);
    } catch (err) {
      if (this.following !== sessionId) return;
      if (misses + 1 >= QUIET_POLLS && !$("progress").hidden) {
        $("progress-note").textContent = "The booth is not answering. Your phone's photos are kept; still trying…";
        $("progress-note").hidden = false;
      }
      setTimeout(() => this.follow(sessionId, finishedAt, shown, misses + 1), POLL_MS);
      return;
    }
    if (this.following !== sessionId) return;
    const final = FINAL.has(view.status);
    if (final && finishedAt === null) finishedAt = Date.now();
    const delivery = view.delivery || {};
    const settled = ["mqtt", "cloud"].every((c) => !delivery[c] || SETTLED.has(delivery[c]));
    const queued = final && !settled && Date.now() - finishedAt >= this.deliveryWaitMs;
    this.showProgress(view, queued);
    // Whoever reads the screen next (often staff) learns that nothing is lost, only waiting.
    $("progress-note").textContent = queued ? QUEUED_NOTE : "";
    $("progress-note").hidden = !queued;
    // A technician's decision turns a review into a grade: the screen shows it when it comes.
    if (final && view.status !== shown) {
      this.showResult(view);
      shown = view.status;
    }
    if (!final || (!settled && !queued)) {
      setTimeout(() => this.follow(sessionId, finishedAt, shown, 0), POLL_MS);
    } else if (view.status === "review") {
      setTimeout(() => this.follow(sessionId, finishedAt, shown, 0), REVIEW_POLL_MS);
    }
  },

  showProgress(view, queued) {
    const final = FINAL.has(view.status);
    const delivery = view.delivery || {};
    const states = {
      capturing: view.status === "capturing" ? "active" : "done",
      grading: final ? "done" : view.status === "capturing" ? "" : "active",
      delivered: this.deliveryState(final, delivery.mqtt, queued),
      mirrored: this.deliveryState(final, delivery.cloud, queued),
    };
    for (const li of $("progress").querySelectorAll("li")) {
      li.className = states[li.dataset.step];
      if (li.dataset.step === "delivered" || li.dataset.step === "mirrored") {
        li.title = states[li.dataset.step];
      }
    }
  },

  deliveryState(final, state, queued) {
    if (!final) return "";
    if (state === "done") return "done";
    if (state === "pending") return queued ? "queued" : "active";
    if (!state) return "off";
    return "failed";
  },

  showResult(view) {
    const result = view.result;
    $("result").hidden = false;
    $("retake").hidden = true;
    const letter = $("grade-letter");
    const text = $("result-text");
    const sections = $("sections");
    sections.replaceChildren();
    letter.className = "";
    if (!result) {
      letter.textContent = "!";
      letter.className = "failed";
      text.textContent = "The booth could not grade this phone. Please try again, or ask a member of staff.";
      sections.append(el("p", { class: "hint" }, `(${view.reason || "no reason given"})`));
      $("retake").hidden = false;
      return;
    }
    if (result.status === "graded") {
      letter.textContent = result.grade;
      letter.className = `grade-${result.grade}`;
      text.textContent = "Your phone's grade";
    } else if (result.status === "review") {
      letter.textContent = "?";
      letter.className = "review";
      text.textContent = "A technician will check the phone by eye before the grade is final.";
    } else {
      letter.textContent = "↺";
      letter.className = "retake";
      text.textContent = "Please retake the photos: what to change is below.";
      $("retake").hidden = false;
    }
    // Dirt is not damage: the grade stands, and cleaning the glass and taking the photos again is offered.
    const recommendations = Object.values(result.analysis).flatMap((a) => a.recommendations);
    if (recommendations.some((r) => r.includes("retake"))) $("retake").hidden = false;
    for (const [name, analysis] of Object.entries(result.analysis)) {
      const card = el("div", { class: "section" },
        el("h3", {}, name, el("span", { class: "score" }, analysis.status === "retake" ? "retake" : `${analysis.score}/100`)));
      // A section to retake says why once: its recommendation repeats the reason.
      const words = analysis.status === "retake" ? [analysis.reason] : [...analysis.issues, ...analysis.recommendations];
      const list = el("ul");
      for (const w of words.length ? words : ["No issues found"]) list.append(el("li", {}, w));
      card.append(list);
      for (const overlay of result.overlays.filter((o) => o.section === name)) {
        card.append(zoomable(imageUrl(overlay.path), `${name} photo with its defects marked`));
      }
      sections.append(card);
    }
  },

  reset() {
    this.following = null;
    this.imei = "";
    $("imei").value = "";
    $("start-error").hidden = true;
    $("result").hidden = true;
    $("progress").hidden = true;
    $("enter").hidden = false;
    this.checkImei();
    $("imei").focus();
  },
};

document.addEventListener("DOMContentLoaded", () => Kiosk.start());
