// Review desk: quicker with JavaScript, complete without it. Every action here is a plain
// form of the page, sent with fetch instead of a page load; the server answers JSON when
// asked (Accept: application/json) and a redirect otherwise.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  document.body.classList.add("js");

  var statusLine = document.getElementById("status");
  function say(message, isError) {
    if (!statusLine) return;
    statusLine.textContent = message || "";
    statusLine.classList.toggle("error", !!isError);
  }

  function isTyping(target) {
    return !!(target && target.closest && target.closest("input, textarea, select, [contenteditable='true']"));
  }

  function setVersion(version) {
    document.querySelectorAll("input[name='version']").forEach(function (input) { input.value = version; });
    document.querySelectorAll(".version").forEach(function (span) { span.textContent = version; });
  }

  function send(form, extra) {
    var data = new URLSearchParams(new FormData(form));
    Object.keys(extra || {}).forEach(function (key) { data.set(key, extra[key]); });
    return fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { error: "Réponse illisible du serveur (" + response.status + ")." };
      }).then(function (payload) {
        if (!response.ok) throw new Error(payload.error || ("Erreur " + response.status));
        return payload;
      });
    });
  }

  // ------------------------------------------------------------------ selection (j / k)
  var rows = Array.prototype.slice.call(document.querySelectorAll(".queue-row, .pair"));
  var selected = -1;
  function select(index) {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    rows[selected].scrollIntoView({ block: "nearest" });
  }
  document.querySelectorAll(".queue-row").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (!event.target.closest("a")) window.location.href = row.dataset.href;
    });
  });

  // ------------------------------------------------------------------ blocks, in place
  function parts(row) {
    return { view: row.querySelector(".block-view"), form: row.querySelector(".block-edit form") };
  }
  function editing() {
    return document.querySelector(".block-view[contenteditable='true']");
  }
  function startEdit(row) {
    var p = parts(row);
    if (!p.view || !p.form || p.view.isContentEditable) return;
    var open = editing();
    if (open) finishEdit(open.closest(".pair"), true);
    p.view.dataset.before = p.view.innerHTML;
    p.view.contentEditable = "true";
    p.view.focus();
    say("Modification du bloc : Entrée ou Ctrl+Entrée pour enregistrer, Échap pour annuler.");
  }
  function finishEdit(row, keep) {
    var p = parts(row);
    if (!p.view || !p.view.isContentEditable) return;
    if (!keep) {
      p.view.innerHTML = p.view.dataset.before;
      p.view.contentEditable = "false";
      say("Modification annulée.");
      return;
    }
    if (p.view.innerHTML === p.view.dataset.before) {
      p.view.contentEditable = "false";
      say("");
      return;
    }
    p.view.contentEditable = "false";
    say("Enregistrement…");
    send(p.form, { html: p.view.innerHTML }).then(function (answer) {
      p.view.innerHTML = answer.html;
      p.form.querySelector("textarea").value = answer.html;
      setVersion(answer.version);
      say(answer.message);
    }).catch(function (error) {
      // The edited text stays on screen: nothing typed is lost.
      p.view.contentEditable = "true";
      say(error.message, true);
    });
  }
  document.querySelectorAll(".pair").forEach(function (row, index) {
    var p = parts(row);
    if (!p.view || !p.form) return;
    p.view.title = "Cliquer pour modifier";
    p.view.addEventListener("click", function (event) {
      if (p.view.isContentEditable) return;
      if (event.target.closest("a")) event.preventDefault();
      select(index);
      startEdit(row);
    });
    p.view.addEventListener("keydown", function (event) {
      if (!p.view.isContentEditable) return;
      // Handled here only: the page's own shortcuts must not see these keys too.
      if (event.key === "Escape") {
        event.preventDefault(); event.stopPropagation(); finishEdit(row, false); p.view.blur();
      } else if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault(); event.stopPropagation(); finishEdit(row, true);
      }
    });
    p.view.addEventListener("blur", function () {
      if (p.view.isContentEditable) finishEdit(row, true);
    });
  });

  // ------------------------------------------------------------------ title, without reload
  var titleForm = document.querySelector(".title-form");
  if (titleForm) {
    titleForm.addEventListener("submit", function (event) {
      event.preventDefault();
      say("Enregistrement…");
      send(titleForm).then(function (answer) {
        setVersion(answer.version);
        document.title = answer.title + " — " + document.title.split(" — ").pop();
        say(answer.message);
      }).catch(function (error) { say(error.message, true); });
    });
  }

  // ------------------------------------------------------------------ keyboard
  var rejectArmed = false;
  function submitKey(key) {
    var form = document.querySelector("form[data-key='" + key + "']");
    if (form) { form.requestSubmit(); return true; }
    return false;
  }
  function follow(key) {
    var link = document.querySelector("a[data-key='" + key + "']");
    if (link) { window.location.href = link.href; return true; }
    return false;
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && editing()) {
        event.preventDefault();
        finishEdit(editing().closest(".pair"), true);
      }
      return;
    }
    if (isTyping(event.target)) return;
    var key = event.key;
    if (key !== "r" && rejectArmed) {
      rejectArmed = false;
      document.querySelectorAll("button.reject").forEach(function (b) { b.classList.remove("armed"); });
    }
    var handled = true;
    if (key === "j") select(selected + 1);
    else if (key === "k") select(selected - 1);
    else if ((key === "Enter" || key === "o") && selected >= 0 && rows[selected].dataset.href) window.location.href = rows[selected].dataset.href;
    else if ((key === "e" || key === "Enter") && selected >= 0 && rows[selected].classList.contains("pair")) startEdit(rows[selected]);
    else if (key === "a") handled = submitKey("a");
    else if (key === "t") handled = submitKey("t");
    else if (key === "r") {
      if (rejectArmed) { handled = submitKey("r"); }
      else {
        rejectArmed = true;
        document.querySelectorAll("button.reject").forEach(function (b) { b.classList.add("armed"); });
        say("Appuyez de nouveau sur r pour rejeter ce brouillon.");
      }
    }
    else if (key === "n" || key === "p" || key === "u") handled = follow(key);
    else handled = false;
    if (handled) event.preventDefault();
  });
})();
