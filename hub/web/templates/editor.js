// Live preview for /ui/templates/editor (the page works without it: saving re-renders).
// Typing in the source posts it (debounced) to /ui/templates/editor/preview with the
// session's CSRF token in a header, and fills each channel × tone cell with textContent.
(function () {
  "use strict";
  var pick = document.getElementById("pick");
  if (pick) {
    pick.addEventListener("submit", function () {
      document.getElementById("pick-template").value =
        document.getElementById("pick-event").value + ":" + document.getElementById("pick-locale").value;
    });
  }
  var source = document.getElementById("source");
  var grid = document.getElementById("previews");
  if (!source || !grid) { return; }
  var csrf = document.getElementById("csrf").value;
  var template = document.getElementById("template-id").value;
  var problem = document.getElementById("problem");
  var timer = null, seq = 0;

  function fill(key, p) {
    var cell = document.getElementById("cell-" + key.replace(".", "-"));
    if (!cell) { return; }
    var channel = key.split(".")[0], text = "";
    if (p.ok) {
      if (channel === "sms") { text = p.parts.body; }
      else if (channel === "push") { text = p.parts.title + "\n" + p.parts.body; }
      else { text = p.parts.subject + "\n\n" + p.parts.text; }
    }
    cell.querySelector(".parts").textContent = text;
    var info = p.template || "";
    if (p.sms) { info += " · " + p.sms.encoding + " · " + p.sms.segments + " SMS / " + p.sms.budget; }
    if (p.html_bytes) { info += " · HTML " + p.html_bytes + " B"; }
    cell.querySelector(".tpl").textContent = info;
    var list = cell.querySelector(".warnings");
    list.textContent = "";
    p.warnings.forEach(function (w) {
      var li = document.createElement("li"), code = document.createElement("strong");
      code.textContent = w.code;
      li.appendChild(code);
      li.appendChild(document.createTextNode(": " + w.message));
      list.appendChild(li);
    });
  }
  function refresh() {
    var mine = ++seq;
    fetch("/ui/templates/editor/preview", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF": csrf },
      body: JSON.stringify({ template: template, source: source.value })
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (mine !== seq) { return; }  // a newer keystroke's answer is on its way
      grid.setAttribute("aria-busy", "false");
      if (body.problem) {
        problem.hidden = false;
        document.getElementById("problem-text").textContent = body.problem;
        return;
      }
      problem.hidden = true;
      Object.keys(body.previews || {}).forEach(function (key) { fill(key, body.previews[key]); });
      grid.dataset.version = String(mine);
    });
  }
  source.addEventListener("input", function () {
    grid.setAttribute("aria-busy", "true");
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
