/* Form builder (copy buttons are static/js/copy.js). */

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
