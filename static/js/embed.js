/* mailpanel signup form embed.
 *
 * Usage: <div data-mailpanel-form="https://panel.example/s/f/<form id>/"></div>
 *        <script src="https://panel.example/static/js/embed.js" async></script>
 *
 * Fetches the form's fields (CORS), renders them with DOM calls only (every text is set
 * with textContent, never as HTML) and submits in the background, showing the answer inline.
 */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] !== null && attrs[key] !== undefined && attrs[key] !== false) {
        node.setAttribute(key, attrs[key] === true ? "" : attrs[key]);
      }
    });
    if (text) { node.textContent = text; }
    return node;
  }

  function inputFor(field, id) {
    var types = { email: "email", number: "number", date: "date" };
    if (field.type === "choice") {
      var select = el("select", { id: id, name: field.name, required: field.required });
      select.appendChild(el("option", { value: "" }));
      field.choices.forEach(function (choice) { select.appendChild(el("option", {}, choice)); });
      return select;
    }
    if (field.type === "boolean") {
      return el("input", { id: id, name: field.name, type: "checkbox", value: "yes" });
    }
    return el("input", {
      id: id, name: field.name, type: types[field.type] || "text", required: field.required,
      autocomplete: field.type === "email" ? "email" : null
    });
  }

  function showErrors(form, errors) {
    Array.prototype.forEach.call(form.querySelectorAll(".mp-error"), function (n) { n.remove(); });
    Object.keys(errors || {}).forEach(function (name) {
      var holder = form.querySelector('[data-mp-field="' + name + '"]') || form.querySelector(".mp-general");
      (errors[name] || []).forEach(function (message) {
        var p = el("p", { "class": "mp-error", role: "alert" }, message);
        p.style.color = "#b91c1c";
        p.style.margin = "4px 0";
        holder.appendChild(p);
      });
    });
  }

  function render(container, config) {
    var uid = "mp" + Math.random().toString(36).slice(2, 8);
    var form = el("form", { method: "post", action: config.submit_url, novalidate: true, "class": "mailpanel-form" });
    form.style.fontFamily = "inherit";
    form.style.maxWidth = "28rem";
    form.appendChild(el("h3", {}, config.title));
    form.appendChild(el("div", { "class": "mp-general" }));
    config.fields.forEach(function (field) {
      var id = uid + "-" + field.name;
      var wrap = el("div", { "data-mp-field": field.name });
      wrap.style.margin = "8px 0";
      var label = el("label", { "for": id }, field.label + (field.required ? " *" : ""));
      label.style.display = "block";
      var input = inputFor(field, id);
      if (field.type !== "boolean") { input.style.width = "100%"; input.style.padding = "6px"; }
      wrap.appendChild(label);
      wrap.appendChild(input);
      form.appendChild(wrap);
    });
    if (config.lists.length) {
      var lists = el("fieldset", { "data-mp-field": "lists" });
      lists.appendChild(el("legend", {}, "Lists"));
      config.lists.forEach(function (item) {
        var id = uid + "-list-" + item.id;
        var row = el("div");
        row.appendChild(el("input", { type: "checkbox", name: "lists", value: item.id, id: id, checked: true }));
        row.appendChild(el("label", { "for": id }, " " + item.name));
        lists.appendChild(row);
      });
      form.appendChild(lists);
    }
    if (config.consent) {
      var consent = el("div", { "data-mp-field": "consent" });
      consent.appendChild(el("input", { type: "checkbox", name: "consent", value: "yes", id: uid + "-consent" }));
      consent.appendChild(el("label", { "for": uid + "-consent" }, " " + config.consent));
      form.appendChild(consent);
    }
    var trap = el("div", { "aria-hidden": "true" });
    trap.style.position = "absolute";
    trap.style.left = "-10000px";
    trap.appendChild(el("input", { name: config.honeypot, tabindex: "-1", autocomplete: "off" }));
    form.appendChild(trap);
    form.appendChild(el("input", { type: "hidden", name: config.timestamp_name, value: config.timestamp }));
    var button = el("button", { type: "submit" }, config.button);
    if (config.brand_color) {
      button.style.background = config.brand_color;
      button.style.color = "#fff";
      button.style.border = "0";
      button.style.padding = "8px 16px";
      button.style.borderRadius = "4px";
    }
    form.appendChild(button);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      fetch(config.submit_url, { method: "POST", body: new FormData(form), credentials: "omit" })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          button.disabled = false;
          if (answer.ok) {
            if (answer.redirect) { window.location.href = answer.redirect; return; }
            var done = el("div", { "class": "mp-done" });
            done.appendChild(el("p", { "class": "mp-success", role: "status" }, answer.message));
            // The form builder's preview: it says that nothing happened.
            if (answer.preview) { done.appendChild(el("p", { "class": "mp-preview", role: "note" }, answer.preview)); }
            form.replaceWith(done);
          } else {
            showErrors(form, answer.errors);
          }
        })
        .catch(function () {
          button.disabled = false;
          showErrors(form, { __all__: ["The form could not be sent. Please try again."] });
        });
    });
    container.textContent = "";
    container.appendChild(form);
  }

  function start() {
    var nodes = document.querySelectorAll("[data-mailpanel-form]");
    Array.prototype.forEach.call(nodes, function (container) {
      if (container.getAttribute("data-mp-ready")) { return; }
      container.setAttribute("data-mp-ready", "1");
      var url = container.getAttribute("data-mailpanel-form");
      if (url.slice(-1) !== "/") { url += "/"; }
      fetch(url + "embed.json", { credentials: "omit" })
        .then(function (response) { return response.json(); })
        .then(function (config) { if (config.ok) { render(container, config); } });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
