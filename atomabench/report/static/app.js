/* atomabench leaderboard: sort, filter and page the table built from data.js (window.ATOMABENCH_DATA).
 * Plain DOM, no framework, no network: every value is inserted with textContent, never as HTML. */
(function () {
  "use strict";
  var data = window.ATOMABENCH_DATA;
  var table = document.getElementById("leaderboard");
  if (!data || !table) {
    return;
  }
  var PAGE = 200;
  var fields = data.fields;
  var columns = data.columns;
  var index = {};
  fields.forEach(function (name, i) { index[name] = i; });
  var rows = data.rows.map(function (values) {
    var row = {};
    fields.forEach(function (name, i) { row[name] = values[i]; });
    row._text = columns.map(function (c) { return row[c.key] == null ? "" : String(row[c.key]); })
      .join(" ").toLowerCase();
    return row;
  });
  var state = { key: data.sort.key, dir: data.sort.dir, text: "", hardware: "", backend: "", limit: PAGE };

  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return value.toFixed(i === 0 ? 0 : 1) + " " + units[i];
  }

  function format(value, kind) {
    if (value === null || value === undefined || value === "") { return "–"; }
    if (kind === "bytes") { return bytes(value); }
    if (kind === "f1") { return value.toLocaleString("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 }); }
    if (kind === "f2") { return value.toLocaleString("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 }); }
    if (kind === "g3") { return Number(value.toPrecision(3)).toString(); }
    if (kind === "usd") { return "$" + Number(value.toPrecision(3)).toString(); }
    return String(value);
  }

  function compare(a, b) {
    var x = a[state.key], y = b[state.key];
    var missingX = x === null || x === undefined || x === "";
    var missingY = y === null || y === undefined || y === "";
    if (missingX || missingY) { return missingX === missingY ? 0 : (missingX ? 1 : -1); }
    var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return state.dir === "asc" ? order : -order;
  }

  var headRow = table.tHead.rows[0];
  columns.forEach(function (column) {
    var th = document.createElement("th");
    th.scope = "col";
    th.dataset.key = column.key;
    if (column.kind !== "text") { th.className = "num"; }
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = column.label;
    button.title = column.help;
    button.addEventListener("click", function () {
      if (state.key === column.key) {
        state.dir = state.dir === "asc" ? "desc" : "asc";
      } else {
        state.key = column.key;
        state.dir = column.kind === "text" ? "asc" : "desc";
      }
      render();
    });
    th.appendChild(button);
    headRow.appendChild(th);
  });

  function fillSelect(id, key) {
    var select = document.getElementById(id);
    var seen = {};
    rows.forEach(function (row) { if (row[key]) { seen[row[key]] = true; } });
    Object.keys(seen).sort().forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    });
    select.addEventListener("change", function () { state[id] = select.value; state.limit = PAGE; render(); });
  }
  fillSelect("hardware", "hardware_class");
  fillSelect("backend", "backend");

  var filter = document.getElementById("filter");
  filter.addEventListener("input", function () {
    state.text = filter.value.trim().toLowerCase();
    state.limit = PAGE;
    render();
  });
  var more = document.getElementById("more");
  more.addEventListener("click", function () { state.limit += PAGE * 5; render(); });

  function render() {
    var words = state.text ? state.text.split(/\s+/) : [];
    var shown = rows.filter(function (row) {
      if (state.hardware && row.hardware_class !== state.hardware) { return false; }
      if (state.backend && row.backend !== state.backend) { return false; }
      return words.every(function (word) { return row._text.indexOf(word) !== -1; });
    });
    shown.sort(compare);
    var body = document.createElement("tbody");
    shown.slice(0, state.limit).forEach(function (row) {
      var tr = document.createElement("tr");
      tr.dataset.runId = row.run_id;
      columns.forEach(function (column) {
        var td = document.createElement("td");
        var text = format(row[column.key], column.kind);
        if (column.kind !== "text") { td.className = "num"; }
        if (column.key === "model") {
          var link = document.createElement("a");
          link.href = row.page;
          link.textContent = text;
          td.appendChild(link);
        } else {
          td.textContent = text;
        }
        if (column.key === "peak_memory_bytes" && row.peak_memory_source === "host RSS") {
          td.title = "peak host RSS (no device memory reading)";
          td.textContent = text + " (host)";
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    Array.prototype.forEach.call(headRow.cells, function (th) {
      th.setAttribute("aria-sort", th.dataset.key === state.key ? (state.dir === "asc" ? "ascending" : "descending") : "none");
    });
    var visible = Math.min(shown.length, state.limit);
    document.getElementById("count").textContent =
      "showing " + visible.toLocaleString("en-US") + " of " + shown.length.toLocaleString("en-US") +
      " matching runs (" + rows.length.toLocaleString("en-US") + " in all)";
    more.hidden = shown.length <= state.limit;
  }
  render();
}());
