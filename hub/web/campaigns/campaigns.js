// Live parts of /ui/campaigns/new (the form works without them):
// 1. the audience helper composes the filter JSON, and every edit asks for the live count;
// 2. each variant's fields are previewed per locale × channel as you type.
// Answers are written with textContent only; the CSRF token travels in X-CSRF.
(function () {
  "use strict";
  var form = document.getElementById("campaign-form");
  if (!form) { return; }
  var csrf = document.getElementById("csrf").value;
  var filter = document.getElementById("audience_filter");
  var countOut = document.getElementById("audience-count");
  var timers = {};

  function later(key, fn) { clearTimeout(timers[key]); timers[key] = setTimeout(fn, 300); }
  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF": csrf },
      body: JSON.stringify(body) }).then(function (r) { return r.json(); });
  }
  function checked(selector) {
    return Array.prototype.map.call(form.querySelectorAll(selector + ":checked"),
      function (el) { return el.value; });
  }

  // 1. audience
  function compose() {
    var all = [], locale = document.getElementById("f-locale").value;
    var segment = document.getElementById("f-segment").value;
    var parcels = document.getElementById("f-parcels").value;
    var consent = checked(".f-consent");
    if (locale) { all.push({ field: "locale", op: "eq", value: locale }); }
    if (segment) { all.push({ field: "segment", op: "eq", value: segment }); }
    if (parcels !== "") { all.push({ field: "activity.parcels_90d", op: "gte", value: parseInt(parcels, 10) }); }
    if (consent.length) {
      all.push({ consent: { purpose: document.getElementById("category").value, channels: consent, any: true } });
    }
    if (!all.length) { all.push({ field: "segment", op: "in", value: ["individual", "business"] }); }
    filter.value = JSON.stringify({ all: all }, null, 2);
    count();
  }
  function count() {
    var parsed;
    try { parsed = JSON.parse(filter.value); } catch (e) {
      countOut.className = "note err"; countOut.textContent = "JSON: " + e.message; return;
    }
    countOut.setAttribute("aria-busy", "true");
    post("/ui/campaigns/audience-count", { filter: parsed, purpose: document.getElementById("category").value })
      .then(function (body) {
        countOut.setAttribute("aria-busy", "false");
        if (body.problem || body.error) {
          countOut.className = "note err"; countOut.textContent = body.problem || body.error; return;
        }
        var parts = Object.keys(body.reachable).map(function (ch) { return ch + " " + body.reachable[ch]; });
        countOut.className = "note ok";
        countOut.dataset.count = String(body.matched);
        countOut.textContent = countOut.dataset.matched + ": " + body.matched + " · " +
          countOut.dataset.reachable + ": " + parts.join(", ");
      });
  }
  document.querySelectorAll("#filter-helper select, #filter-helper input").forEach(function (el) {
    el.addEventListener("change", function () { later("compose", compose); });
    el.addEventListener("input", function () { later("compose", compose); });
  });
  filter.addEventListener("input", function () { later("count", count); });
  document.getElementById("category").addEventListener("change", function () { later("count", count); });
  count();

  // 2. variants
  function fields() {
    var out = {};
    new FormData(form).forEach(function (value, key) {
      if (key !== "channels" && key !== "csrf" && key !== "audience_filter") { out[key] = String(value); }
    });
    return out;
  }
  function cell(key, p) {
    var div = document.createElement("div"), h = document.createElement("h3");
    div.className = "cell"; div.dataset.cell = key;
    h.textContent = key.replace(".", " · ");
    div.appendChild(h);
    var pre = document.createElement("pre");
    pre.style.whiteSpace = "pre-wrap"; pre.style.background = "#f9fafb"; pre.style.padding = "6px";
    if (p.ok) {
      var parts = p.parts;
      pre.textContent = p.channel === "sms" ? parts.body :
        (p.channel === "push" || p.channel === "app_push" || p.channel === "inbox") ?
        parts.title + "\n" + parts.body : parts.subject + "\n\n" + parts.text;
    }
    div.appendChild(pre);
    if (p.sms) {
      var info = document.createElement("p");
      info.className = "muted";
      info.textContent = p.sms.encoding + " · " + p.sms.segments + " SMS / " + p.sms.budget;
      div.appendChild(info);
    }
    p.warnings.forEach(function (w) {
      var warn = document.createElement("p");
      warn.className = "note warn"; warn.textContent = w.code + ": " + w.message;
      div.appendChild(warn);
    });
    return div;
  }
  function preview(section) {
    var index = section.dataset.index, box = document.getElementById("preview-v" + index);
    var problem = section.querySelector(".preview-problem");
    post("/ui/campaigns/preview", { fields: fields(), channels: checked("input[name=channels]"), index: index })
      .then(function (body) {
        box.textContent = "";
        if (body.problem || body.error) { problem.hidden = false; problem.textContent = body.problem || body.error; return; }
        problem.hidden = true;
        Object.keys(body.previews).forEach(function (key) { box.appendChild(cell(key, body.previews[key])); });
        box.dataset.ready = "1";
      });
  }
  document.querySelectorAll("section.variant").forEach(function (section) {
    section.addEventListener("input", function () { later("v" + section.dataset.index, function () { preview(section); }); });
    preview(section);
  });
  document.getElementById("channels").addEventListener("change", function () {
    document.querySelectorAll("section.variant").forEach(preview);
  });
})();
