// Desktop / phone width toggle for the campaign preview iframe.
document.addEventListener("DOMContentLoaded", function () {
  var frame = document.getElementById("preview-frame");
  if (!frame) return;
  document.querySelectorAll("[data-preview-width]").forEach(function (button) {
    button.addEventListener("click", function () {
      frame.style.width = button.getAttribute("data-preview-width");
    });
  });
});
