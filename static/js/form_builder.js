/* Form builder: copy buttons for the embed snippets (no inline scripts: CSP). */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { source.select(); document.execCommand("copy"); done(); });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });
})();

/* Live preview on the edit page: the unsaved values are posted (with the page's CSRF token)
   to the preview endpoint, into the sandboxed iframe named by data-preview-frame. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-live-preview]");
  if (!form) { return; }
  var timer = null;
  var refresh = function () {
    var action = form.getAttribute("action");
    var target = form.getAttribute("target");
    form.setAttribute("action", form.getAttribute("data-live-preview"));
    form.setAttribute("target", form.getAttribute("data-preview-frame"));
    HTMLFormElement.prototype.submit.call(form);
    if (action === null) { form.removeAttribute("action"); } else { form.setAttribute("action", action); }
    if (target === null) { form.removeAttribute("target"); } else { form.setAttribute("target", target); }
  };
  var later = function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  refresh();
})();
