// The customer's side of the booth's screen: IMEI, Grade, live progress, the result.
"use strict";
const POLL_MS = 800;
// After the result, delivery to the store system and the cloud is followed this long at most.
const DELIVERY_WAIT_MS = 60000;
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

  async start() {
    this.config = await api("/api/kiosk/config");
    $("booth-name").textContent = `Trade-in booth ${this.config.booth_id}`;
    $("imei").addEventListener("input", () => this.checkImei());
    $("imei").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !$("grade").disabled) this.grade();
    });
    $("grade").addEventListener("click", () => this.grade());
    $("retake").addEventListener("click", () => this.grade());
    $("again").addEventListener("click", () => this.reset());
    $("zoom").addEventListener("click", () => { $("zoom").hidden = true; });
    this.checkImei();
    $("imei").focus();
  },

  checkImei() {
    const value = $("imei").value.trim();
    const reason = BoothImei.check(value, this.config.imei_check);
    $("imei-hint").textContent = reason ? shortReason(reason) : "IMEI is valid";
    $("imei-hint").className = reason && value ? "hint bad" : reason ? "hint" : "hint good";
    $("grade").disabled = reason !== null;
    return reason === null ? value : null;
  },

  async grade() {
    const imei = this.imei && !$("result").hidden ? this.imei : this.checkImei();
    if (!imei) return;
    this.imei = imei;
    $("start-error").hidden = true;
    $("grade").disabled = true;
    let session;
    try {
      session = await api("/api/kiosk/sessions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ imei }),
      });
    } catch (err) {
      $("start-error").textContent = err.message;
      $("start-error").hidden = false;
      $("grade").disabled = false;
      return;
    }
    $("enter").hidden = true;
    $("result").hidden = true;
    $("progress").hidden = false;
    this.follow(session.sessionId, null);
  },

  async follow(sessionId, finishedAt) {
    let view;
    try {
      view = await api(`/api/sessions/${sessionId}`);
    } catch (err) {
      setTimeout(() => this.follow(sessionId, finishedAt), POLL_MS);
      return;
    }
    this.showProgress(view);
    const final = FINAL.has(view.status);
    if (final && finishedAt === null) {
      finishedAt = Date.now();
      this.showResult(view);
    }
    const delivery = view.delivery || {};
    const settled = ["mqtt", "cloud"].every((c) => !delivery[c] || SETTLED.has(delivery[c]));
    if (!final || (!settled && Date.now() - finishedAt < DELIVERY_WAIT_MS)) {
      setTimeout(() => this.follow(sessionId, finishedAt), POLL_MS);
    }
  },

  showProgress(view) {
    const final = FINAL.has(view.status);
    const delivery = view.delivery || {};
    const states = {
      capturing: view.status === "capturing" ? "active" : "done",
      grading: final ? "done" : view.status === "capturing" ? "" : "active",
      delivered: this.deliveryState(final, delivery.mqtt),
      mirrored: this.deliveryState(final, delivery.cloud),
    };
    for (const li of $("progress").querySelectorAll("li")) {
      li.className = states[li.dataset.step];
      if (li.dataset.step === "delivered" || li.dataset.step === "mirrored") {
        li.title = states[li.dataset.step];
      }
    }
  },

  deliveryState(final, state) {
    if (!final) return "";
    if (state === "done") return "done";
    if (state === "pending") return "active";
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
      text.textContent = `The booth could not grade this phone: ${view.reason || "see the technician"}`;
      return;
    }
    if (result.status === "graded") {
      letter.textContent = result.grade;
      letter.className = `grade-${result.grade}`;
      text.textContent = "Your phone's grade";
    } else if (result.status === "review") {
      letter.textContent = "?";
      letter.className = "review";
      text.textContent = "A technician will check the screen by eye before the grade is final.";
    } else {
      letter.textContent = "↺";
      letter.className = "retake";
      const which = Object.entries(result.analysis)
        .filter(([, a]) => a.status === "retake")
        .map(([name, a]) => `${name}: ${a.reason}`);
      text.textContent = `Please retake the photos. ${which.join("; ")}`;
      $("retake").hidden = false;
    }
    for (const [name, analysis] of Object.entries(result.analysis)) {
      const card = el("div", { class: "section" },
        el("h3", {}, name, el("span", { class: "score" }, analysis.status === "retake" ? "retake" : `${analysis.score}/100`)));
      const words = [...analysis.issues, ...analysis.recommendations];
      if (analysis.status === "retake") words.unshift(analysis.reason);
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
    this.imei = "";
    $("imei").value = "";
    $("result").hidden = true;
    $("progress").hidden = true;
    $("enter").hidden = false;
    this.checkImei();
    $("imei").focus();
  },
};

document.addEventListener("DOMContentLoaded", () => {
  Kiosk.start().catch((err) => {
    $("start-error").textContent = `The booth does not answer: ${err.message}`;
    $("start-error").hidden = false;
  });
});
