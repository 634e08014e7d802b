// Canopy's own script: only conveniences over forms that work without it.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  // the workspace switcher goes on choosing
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { if (s.value) { s.form.submit(); } });
  });
});
// a type-ahead suggestion fills its field
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("button.suggestion");
  if (!b) { return; }
  var box = b.closest(".typeahead");
  var input = box && box.querySelector("input");
  if (input) {
    input.value = b.getAttribute("data-value");
    input.focus();
  }
  var list = b.closest(".suggestion-box");
  if (list) { list.innerHTML = ""; }
});
