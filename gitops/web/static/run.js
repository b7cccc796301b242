// The run page, live: stage states and log lines arrive as server-sent events (gitops/web/live.py).
// Every value from outside is set as text (textContent), never as markup.
(function () {
  "use strict";
  var main = document.querySelector("main[data-run]");
  if (!main) return;
  var log = document.getElementById("log");
  var form = document.getElementById("log-filter");
  var stageField = form.elements.stage;
  var searchField = form.elements.q;
  var empty = document.getElementById("no-output");
  var count = parseInt(empty.dataset.count, 10) || 0;

  function matches(line) {
    var stage = stageField.value;
    var needle = searchField.value.toLowerCase();
    return (!stage || line.dataset.s === stage) &&
      (!needle || line.lastChild.textContent.toLowerCase().indexOf(needle) !== -1);
  }

  function applyFilter() {
    var shown = 0;
    for (var i = 0; i < log.children.length; i++) {
      var line = log.children[i];
      line.hidden = !matches(line);
      if (!line.hidden) shown++;
    }
    empty.hidden = shown > 0;
  }

  form.addEventListener("input", applyFilter);
  form.addEventListener("submit", function (event) {
    // Lines filtered out by the server are not on the page: let it filter again when it had.
    if (location.search.indexOf("stage=") !== -1 || location.search.indexOf("q=") !== -1) return;
    event.preventDefault();
    applyFilter();
    var query = new URLSearchParams(new FormData(form)).toString();
    history.replaceState(null, "", "?" + query + location.hash);
  });

  if (main.dataset.final === "true" || !window.EventSource) return;

  function text(tag, className, value) {
    var element = document.createElement(tag);
    if (className) element.className = className;
    element.textContent = value;
    return element;
  }

  function addLines(lines) {
    var follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    var fragment = document.createDocumentFragment();
    lines.forEach(function (x) {
      count += 1;
      var line = document.createElement("div");
      line.id = "L" + x.id;
      line.dataset.s = x.stage;
      var anchor = text("a", "", String(count));
      anchor.href = "#L" + x.id;
      line.append(anchor, text("span", "", x.line));
      line.hidden = !matches(line);
      if (!line.hidden) empty.hidden = true;
      fragment.append(line);
    });
    log.append(fragment);
    if (follow) log.scrollTop = log.scrollHeight;
  }

  function showRun(run) {
    var badge = document.getElementById("run-state");
    badge.textContent = run.state;
    badge.className = "badge " + run.state;
    var headline = document.getElementById("headline");
    headline.textContent = run.headline;
    headline.className = "banner " + run.state;
    document.getElementById("run-duration").textContent = run.duration;
    document.getElementById("run-started").textContent = run.started;
    document.getElementById("run-finished").textContent = run.finished;
    run.stages.forEach(function (stage) {
      var box = document.querySelector('[data-stage-box="' + CSS.escape(stage.name) + '"]');
      if (!box) return;
      box.className = "stage " + stage.state;
      box.querySelector(".st").textContent = stage.state;
      box.querySelector(".attempts").textContent = stage.attempts > 1 ? stage.attempts + " attempts" : "";
      box.querySelector(".duration").textContent = stage.duration;
      box.querySelector(".reason").textContent = stage.reason;
    });
    if (run.final) {
      document.querySelectorAll(".while-active").forEach(function (element) { element.remove(); });
    }
  }

  // The stream's path comes from the page: it carries the service's prefix (behind a proxy at a path).
  var source = new EventSource(main.dataset.events + "?after=" + empty.dataset.after);
  source.addEventListener("logs", function (event) { addLines(JSON.parse(event.data)); });
  source.addEventListener("run", function (event) { showRun(JSON.parse(event.data)); });
  source.addEventListener("end", function () { source.close(); main.dataset.final = "true"; });
})();
