// Live preview of a design template: the textarea's HTML shown in a sandboxed iframe
// (no allow-scripts, no allow-same-origin), updated a moment after typing stops.
document.addEventListener("DOMContentLoaded", function () {
  var source = document.getElementById("id_html");
  var frame = document.getElementById("template-live-preview");
  if (!source || !frame) return;
  var timer = null;
  source.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { frame.srcdoc = source.value; }, 400);
  });
});
