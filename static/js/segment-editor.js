// Segment editor: offer only the comparisons the chosen subject supports, and hide the
// value box where none is needed. The form works without this file.
(function () {
  "use strict";
  var VALUELESS = ["is_set", "is_not_set"];

  function refresh(row) {
    var what = row.querySelector("[data-role=what]");
    var op = row.querySelector("[data-role=op]");
    var value = row.querySelector("[data-role=value]");
    if (!what || !op || !value) return;
    var chosen = what.options[what.selectedIndex];
    var allowed = chosen && chosen.dataset.ops ? chosen.dataset.ops.split(" ") : null;
    var firstAllowed = null;
    Array.prototype.forEach.call(op.options, function (option) {
      var ok = !allowed || allowed.indexOf(option.value) !== -1;
      option.hidden = !ok;
      option.disabled = !ok;
      if (ok && firstAllowed === null) firstAllowed = option;
    });
    if (op.selectedOptions.length && op.selectedOptions[0].disabled && firstAllowed) {
      firstAllowed.selected = true;
    }
    Array.prototype.forEach.call(op.querySelectorAll("optgroup"), function (group) {
      group.hidden = !Array.prototype.some.call(group.children, function (o) { return !o.hidden; });
    });
    var picked = op.options[op.selectedIndex];
    var needsValue = what.value !== "" && VALUELESS.indexOf(op.value) === -1 &&
      op.value.indexOf("status:") !== 0 && !(picked && picked.hasAttribute("data-valueless"));
    value.hidden = !needsValue;
    var kind = what.value.split(":")[0];
    value.placeholder = kind === "subscribed" ? "YYYY-MM-DD" : "";
  }

  function init() {
    var rows = document.querySelectorAll(".segment-row");
    Array.prototype.forEach.call(rows, function (row) {
      refresh(row);
      row.addEventListener("change", function () { refresh(row); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
