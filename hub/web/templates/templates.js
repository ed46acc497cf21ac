// Progressive enhancement for /ui/templates: the page works without it.
// 1. Changing a select re-renders the preview (a locale change also resets the sample data).
// 2. The SMS bubble is editable and its counter recomputes encoding and segments live,
//    with the same rules as templates/sms.py (GSM-7 160/153 with 2-septet extension
//    characters; otherwise UCS-2 70/67 counted in UTF-16 code units).
(function () {
  "use strict";
  var form = document.getElementById("choose-form");
  if (form) {
    form.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () {
        if (el.hasAttribute("data-resets-sample") || el.id === "event_type") {
          document.getElementById("sample").value = "";
        }
        form.submit();
      });
    });
  }
  var phone = document.getElementById("gsm");
  var text = document.getElementById("sms-text");
  var out = document.getElementById("sms-counter");
  if (!phone || !text || !out) { return; }
  var basic = JSON.parse(phone.dataset.basic);
  var ext = JSON.parse(phone.dataset.ext);
  var budget = parseInt(phone.dataset.budget, 10) || 1;

  function parts(costs, size) {
    var n = 1, used = 0;
    costs.forEach(function (c) { if (used + c > size) { n += 1; used = 0; } used += c; });
    return n;
  }
  function count(s) {
    var chars = Array.from(s);
    var gsm = chars.every(function (c) { return basic.indexOf(c) >= 0 || ext.indexOf(c) >= 0; });
    var costs = chars.map(function (c) {
      if (gsm) { return ext.indexOf(c) >= 0 ? 2 : 1; }
      return c.codePointAt(0) > 0xFFFF ? 2 : 1;
    });
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var segments = units === 0 ? 0 : (units <= single ? 1 : parts(costs, multi));
    return { gsm: gsm, units: units, segments: segments };
  }
  function update() {
    var c = count(text.value);
    out.textContent = (c.gsm ? "GSM-7" : "UCS-2") + " · " + c.units + " " +
      (c.gsm ? "septetów GSM-7" : "jednostek UTF-16") + " · " + c.segments + " SMS (limit " + budget + ")";
    out.classList.toggle("over", c.segments > budget);
  }
  text.addEventListener("input", update);
})();
