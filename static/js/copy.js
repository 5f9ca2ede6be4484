/* Copy buttons, everywhere in the panel: <button data-copy-target="id"> copies the value of
   that field (or the text of that element). A button marked hidden stays hidden without
   JavaScript, where it could not work. A file, not inline: the CSP allows no inline script. */
(function () {
  "use strict";
  if (window.mailpanelCopy) { return; }
  window.mailpanelCopy = true;
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy-target][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent.trim();
    var label = button.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    var fallback = function () {
      if (source.select) { source.select(); document.execCommand("copy"); }
      done();
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });
})();
