// phosphene report: sort and filter the unit grids, sort the completeness table. The pages read fine
// without it; it only adds the controls.
"use strict";

function parseUnits(text) {
  const units = new Set();
  for (const part of text.split(",")) {
    const m = part.trim().match(/^(\d+)(?:\s*-\s*(\d+))?$/);
    if (!m) continue;
    const lo = +m[1], hi = m[2] === undefined ? lo : +m[2];
    for (let u = lo; u <= hi && u - lo < 100000; u++) units.add(u);
  }
  return units;
}

function setupGrid(section) {
  const controls = section.querySelector(".controls");
  const grid = section.querySelector(".grid");
  if (!controls || !grid) return;
  controls.hidden = false;
  const sort = controls.querySelector(".sort");
  const filter = controls.querySelector(".filter");
  const count = controls.querySelector(".count");
  const cards = Array.from(grid.children);
  function apply() {
    const key = sort.value;
    const value = (card) => { const v = parseFloat(card.dataset[key]); return Number.isNaN(v) ? -Infinity : v; };
    const sorted = cards.slice().sort((a, b) =>
      key === "unit" ? value(a) - value(b) : (value(b) - value(a)) || (+a.dataset.unit - +b.dataset.unit));
    grid.replaceChildren(...sorted);
    const wanted = filter.value.trim() ? parseUnits(filter.value) : null;
    let shown = 0;
    for (const card of cards) {
      card.hidden = wanted !== null && !wanted.has(+card.dataset.unit);
      if (!card.hidden) shown++;
    }
    count.textContent = `${shown} of ${cards.length} units`;
  }
  sort.addEventListener("change", apply);
  filter.addEventListener("input", apply);
  apply();
}

function setupTable(table) {
  const body = table.tBodies[0];
  table.querySelectorAll("th").forEach((th, column) => {
    let descending = false;
    th.addEventListener("click", () => {
      descending = !descending;
      const rows = Array.from(body.rows);
      const key = (row) => { const v = parseFloat(row.cells[column].textContent); return Number.isNaN(v) ? -Infinity : v; };
      rows.sort((a, b) => (descending ? key(b) - key(a) : key(a) - key(b)));
      body.replaceChildren(...rows);
    });
  });
}

document.querySelectorAll("section.layer").forEach(setupGrid);
document.querySelectorAll("table.sortable").forEach(setupTable);
