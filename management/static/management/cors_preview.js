/* The route form's live CORS preview (management/console_cors.py computes the answer).
 * As the admin edits the CORS fields or the origin to try, the fields are posted (debounced)
 * to the console's preview endpoint and the preflight answer is shown. Only textContent is
 * written: nothing typed or answered is ever parsed as HTML. */
(function () {
  "use strict";
  var panel = document.getElementById("cors-preview");
  if (!panel) { return; }
  var form = document.getElementById("route_form");
  var saved = JSON.parse(document.getElementById("cors-preview-saved").textContent);
  var originInput = document.getElementById("cors-preview-origin");
  var methodInput = document.getElementById("cors-preview-method");
  var headersInput = document.getElementById("cors-preview-headers");
  var statusLine = document.getElementById("cors-preview-status");
  var headerList = document.getElementById("cors-preview-headers-out");
  var actualList = document.getElementById("cors-preview-actual-out");
  var notes = document.getElementById("cors-preview-notes");
  var FIELDS = ["cors_origins", "cors_headers", "cors_expose_headers", "cors_max_age"];
  var CHECKS = ["cors_methods", "method_choices"];
  var timer = null;
  var sequence = 0;

  // Beside the CORS fields, where the admin is typing (the panel is rendered after the form's
  // fieldsets, which also works without this move).
  var corsFieldset = document.querySelector("fieldset.gw-cors");
  if (corsFieldset) { corsFieldset.appendChild(panel); }

  function editable(name) {
    return form ? form.querySelector("[name=" + name + "]") : null;
  }

  function value(name) {
    var input = editable(name);
    if (input) { return input.value; }
    return saved[name] || "";  // a read-only page (a viewer): the saved config
  }

  function ticked(name) {
    if (editable(name)) {
      return Array.prototype.map.call(
        form.querySelectorAll("[name=" + name + "]:checked"), function (box) { return box.value; });
    }
    return saved[name] || [];
  }

  function credentials() {
    var box = editable("cors_credentials");
    return box ? box.checked : Boolean(saved.cors_credentials);
  }

  function firstOrigin() {
    var origins = value("cors_origins").split(/[\s,]+/).filter(function (o) { return o && o !== "*"; });
    return origins.length ? origins[0] : "https://app.example.com";
  }

  function fill(list, headers) {
    list.textContent = "";
    Object.keys(headers).forEach(function (name) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = name + ": " + headers[name];
      item.appendChild(code);
      list.appendChild(item);
    });
  }

  function show(text, lines) {
    statusLine.textContent = text;
    notes.textContent = (lines || []).join(" ");
  }

  function render(answer) {
    fill(headerList, {});
    fill(actualList, {});
    if (!answer.ok) {
      show("Cannot preview:", answer.errors.map(function (e) { return e.message; }));
      panel.dataset.state = "error";
      return;
    }
    if (!answer.configured) {
      show("No CORS configured: the gateway does not answer preflights for browsers; " +
           "a browser on another origin cannot call this route.", []);
      panel.dataset.state = "none";
      return;
    }
    var allowed = Object.keys(answer.preflight_headers).length > 0;
    show(answer.status + " No Content" + (allowed ? "" :
         " — no CORS headers: this origin is not allowed, the browser blocks the call."),
         answer.browser_notes);
    fill(headerList, answer.preflight_headers);
    fill(actualList, answer.response_headers);
    panel.dataset.state = allowed ? "allowed" : "refused";
  }

  function refresh() {
    var body = new URLSearchParams();
    FIELDS.forEach(function (name) { body.append(name, value(name)); });
    CHECKS.forEach(function (name) {
      ticked(name).forEach(function (v) { body.append(name, v); });
    });
    if (credentials()) { body.append("cors_credentials", "on"); }
    body.append("preview_origin", originInput.value);
    body.append("preview_method", methodInput.value);
    body.append("preview_headers", headersInput.value);
    var token = panel.querySelector("[name=csrfmiddlewaretoken]").value;
    var mine = ++sequence;
    panel.dataset.pending = "1";
    fetch(panel.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRFToken": token, "Accept": "application/json"},
      body: body
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") !== 0) {
        throw new Error("The preview is unavailable (status " + response.status +
                        "): is your session still open? Reload the page.");
      }
      return response.json();
    }).then(function (answer) {
      if (mine === sequence) { render(answer); }
    }).catch(function (error) {
      if (mine === sequence) { show(error.message, []); panel.dataset.state = "error"; }
    }).finally(function () {
      if (mine === sequence) { delete panel.dataset.pending; }
    });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 300);
  }

  originInput.value = firstOrigin();
  var watched = FIELDS.concat(CHECKS, ["cors_credentials"]);
  if (form) {
    form.addEventListener("input", function (event) {
      if (watched.indexOf(event.target.name) >= 0) {
        if (event.target.name === "cors_origins" && !originInput.dataset.touched) {
          originInput.value = firstOrigin();
        }
        later();
      }
    });
    form.addEventListener("change", function (event) {
      if (watched.indexOf(event.target.name) >= 0) { later(); }
    });
  }
  originInput.addEventListener("input", function () { originInput.dataset.touched = "1"; later(); });
  methodInput.addEventListener("change", later);
  headersInput.addEventListener("input", later);
  refresh();
}());
