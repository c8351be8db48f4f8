// Catalog edit form: a button that adds another empty row of documents (without it, two empty rows are there).
(function () {
  "use strict";
  var button = document.getElementById("add-doc");
  var rows = document.getElementById("doc-rows");
  if (!button || !rows) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var last = rows.querySelector("tr.doc-row:last-child");
    if (!last) { return; }
    var row = last.cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    row.querySelectorAll("select").forEach(function (select) { select.selectedIndex = 0; });
    rows.appendChild(row);
    row.querySelector("input").focus();
  });
}());
