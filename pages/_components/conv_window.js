// The convolution-arithmetic helper's sliding window, drawn and answered in the browser.
// data: {axis, dims, key}; axis is deeparch.introspection.convmath.LayerAxis.to_dict(): every
// (input position, output position, kernel tap) link of one axis. A 2-D layer (same numbers on
// both axes) links cell (r, c) to cell (r', c') when r-r' and c-c' are both links.

const POINT_HINT = "Point at an output cell to see the input cells it reads, or at an input cell to see the output cells it feeds.";
const OVERLAP_HINT = " The number in each output cell counts the input cells that write to it: where it is uneven, a transposed convolution leaves a checkerboard pattern (Odena, Dumoulin & Olah, Distill 2016).";
const RED = "#E45756", DARK_RED = "#B03A38", BLUE = "#DCE6F2", GREY = "#EEEEEE";

function spanText(values) {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (!sorted.length) return "none";
  const contiguous = sorted.every((v, i) => i === 0 || v === sorted[i - 1] + 1);
  if (contiguous) return sorted.length === 1 ? `${sorted[0]}` : `${sorted[0]}–${sorted[sorted.length - 1]}`;
  return sorted.join(", ");
}

function indexLinks(axis) {
  const byOut = new Map(), byIn = new Map();
  for (const [i, o, k] of axis.links) {
    if (!byOut.has(o)) byOut.set(o, []);
    if (!byIn.has(i)) byIn.set(i, []);
    byOut.get(o).push([i, k]);
    byIn.get(i).push([o, k]);
  }
  return { byOut, byIn };
}

function setup(root) {
  const s = {
    root,
    canvas: root.querySelector(".da-conv-canvas"),
    caption: root.querySelector(".da-conv-caption"),
    rowInput: root.querySelector(".da-conv-r"),
    colInput: root.querySelector(".da-conv-c"),
    rowLabel: root.querySelector(".da-conv-row"),
    hint: root.querySelector(".da-conv-hint"),
    colLabel: root.querySelector(".da-conv-col"),
    selection: null,
    geometry: null,
  };
  s.canvas.addEventListener("pointermove", (event) => pointAt(s, event));
  s.canvas.addEventListener("pointerdown", (event) => pointAt(s, event));
  const fromSliders = () => {
    const side = transposed(s) ? "in" : "out";
    select(s, { side, r: Number(s.rowInput.value), c: Number(s.colInput.value) });
  };
  s.rowInput.addEventListener("input", fromSliders);
  s.colInput.addEventListener("input", fromSliders);
  new ResizeObserver(() => draw(s)).observe(root);
  return s;
}

function transposed(s) {
  return s.axis.mode === "transposed convolution";
}

function configure(s, data) {
  s.axis = data.axis;
  s.dims = data.dims;
  s.links = indexLinks(s.axis);
  const side = transposed(s) ? "in" : "out";
  const last = side === "in" ? s.axis.size - 1 : s.axis.out - 1;
  for (const input of [s.rowInput, s.colInput]) {
    input.max = String(last);
    input.value = "0";
    input.disabled = last === 0;
  }
  const what = side === "in" ? "input" : "output";
  s.rowLabel.firstChild.textContent = `${what} row `;
  s.colLabel.firstChild.textContent = s.dims === 2 ? `${what} column ` : `${what} position `;
  s.rowLabel.style.display = s.dims === 2 ? "" : "none";
  s.selection = { side, r: 0, c: 0 };
  s.hint.textContent = POINT_HINT + (transposed(s) ? OVERLAP_HINT : "");
  draw(s);
}

// ---- geometry: where each cell is drawn ----------------------------------------------------

function layout(s) {
  const axis = s.axis;
  const [iLo, iHi] = axis.input_span, [oLo, oHi] = axis.output_span;
  const nIn = iHi - iLo, nOut = oHi - oLo;
  const width = Math.max(s.root.clientWidth, 200);
  const label = 22;
  if (s.dims === 2) {
    const cell = Math.max(4, Math.min(26, Math.floor(width / (nIn + nOut + 2))));
    return {
      cell, label, width: cell * (nIn + nOut + 2), height: label + cell * Math.max(nIn, nOut),
      input: (r, c) => [(c - iLo) * cell, label + (r - iLo) * cell],
      output: (r, c) => [(nIn + 2 + c - oLo) * cell, label + (r - oLo) * cell],
      inLabelX: (nIn * cell) / 2, outLabelX: (nIn + 2 + nOut / 2) * cell,
    };
  }
  // 1-D: the narrow row's cells sit at the centre of the window each is linked to (a causal
  // output under its newest input), so the lines show which way the layer looks.
  const wideIsInput = axis.mode !== "transposed convolution";
  const [wLo, wHi] = wideIsInput ? [iLo, iHi] : [oLo, oHi];
  const cell = Math.max(4, Math.min(30, Math.floor(width / (wHi - wLo))));
  const causal = axis.padding_right === 0 && axis.padding_left > 0 && axis.mode === "convolution";
  const index = wideIsInput ? s.links.byOut : s.links.byIn;
  const anchor = (p) => {
    const list = (index.get(p) || []).map(([q]) => q);
    if (!list.length) return p;
    return causal ? Math.max(...list) : list.reduce((a, b) => a + b, 0) / list.length;
  };
  const gap = 2 * cell + 24;
  const wideAt = (p) => (p - wLo) * cell, narrowAt = (p) => (anchor(p) - wLo) * cell;
  return {
    cell, label, width: cell * (wHi - wLo), height: 2 * label + 2 * cell + gap, gap,
    input: (r, c) => [wideIsInput ? wideAt(c) : narrowAt(c), label],
    output: (r, c) => [wideIsInput ? narrowAt(c) : wideAt(c), 2 * label + cell + gap],
    inLabelX: (cell * (wHi - wLo)) / 2, outLabelX: (cell * (wHi - wLo)) / 2,
    outLabelY: label + cell + gap + 14,
  };
}

function hit(s, x, y) {
  const g = s.geometry, axis = s.axis;
  const [iLo, iHi] = axis.input_span, [oLo, oHi] = axis.output_span;
  for (const [side, lo, hi, place] of [["in", iLo, iHi, g.input], ["out", oLo, oHi, g.output]]) {
    for (let r = s.dims === 2 ? lo : 0; r < (s.dims === 2 ? hi : 1); r++) {
      for (let c = lo; c < hi; c++) {
        const [x0, y0] = place(r, c);
        if (x >= x0 && x < x0 + g.cell && y >= y0 && y < y0 + g.cell) return { side, r, c };
      }
    }
  }
  return null;
}

function pointAt(s, event) {
  if (!s.geometry) return;
  const box = s.canvas.getBoundingClientRect();
  const found = hit(s, event.clientX - box.left, event.clientY - box.top);
  if (found) select(s, found);
}

function select(s, selection) {
  const old = s.selection;
  if (old && old.side === selection.side && old.r === selection.r && old.c === selection.c) return;
  s.selection = selection;
  const real = transposed(s) ? selection.side === "in" : selection.side === "out";
  if (real) {  // keep the sliders on the cell the pointer chose
    s.rowInput.value = String(selection.r);
    s.colInput.value = String(selection.c);
  }
  draw(s);
}

// ---- what the selected cell is linked to -----------------------------------------------------

function linked(s) {
  const { side, r, c } = s.selection;
  const index = side === "out" ? s.links.byOut : s.links.byIn;
  const rows = s.dims === 2 ? index.get(r) || [] : [[0, 0]];
  const cols = index.get(c) || [];
  const cells = [];
  for (const [pr, kr] of rows) for (const [pc, kc] of cols) cells.push({ r: pr, c: pc, kr, kc });
  return cells;
}

function contributors(s) {
  // Output cell -> how many input cells write to it (a transposed convolution's overlap).
  const counts = new Map();
  for (const [o, list] of s.links.byOut) counts.set(o, list.length);
  return counts;
}

function cellName(s, r, c) {
  return s.dims === 2 ? `(${r}, ${c})` : `${c}`;
}

function describe(s, cells) {
  const axis = s.axis, { side, r, c } = s.selection;
  const here = cellName(s, r, c);
  const rows = spanText(cells.map((x) => x.r)), cols = spanText(cells.map((x) => x.c));
  const where = s.dims === 2 ? `rows ${rows}, columns ${cols}` : `positions ${cols}`;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const isReal = (p, n) => p >= 0 && p < n;
  if (side === "out") {
    if (!(isReal(c, axis.out) && (s.dims === 1 || isReal(r, axis.out)))) {
      return `output ${here} is cropped off by the padding: it is not part of the output`;
    }
    const padded = cells.filter((x) => !(isReal(x.c, axis.size) && (s.dims === 1 || isReal(x.r, axis.size)))).length;
    const padNote = padded ? ` (${padded} of them padding)` : "";
    if (axis.mode === "pooling") {
      return `output ${here} is the max (or mean) of input ${where}: ${plural(cells.length, "cell")}${padNote}`;
    }
    if (axis.mode === "transposed convolution") {
      return `output ${here} adds up ${plural(cells.length, "product")} of a kernel weight and an input cell, from input ${where}`;
    }
    return `output ${here} reads input ${where}: ${plural(cells.length, "cell")}${padNote}, one per kernel weight`;
  }
  if (!(isReal(c, axis.size) && (s.dims === 1 || isReal(r, axis.size)))) {
    return `padding cell ${here} holds zeros; ${plural(cells.length, "output cell")} read it`;
  }
  if (axis.mode === "transposed convolution") {
    const kept = cells.filter((x) => isReal(x.c, axis.out) && (s.dims === 1 || isReal(x.r, axis.out))).length;
    const crop = kept < cells.length ? ` (${cells.length - kept} cropped off)` : "";
    return `input ${here} writes its value times the kernel into output ${where}: ${plural(cells.length, "cell")}${crop}`;
  }
  return `input ${here} is read by ${plural(cells.length, "output cell")}: ${where}`;
}

// ---- drawing ---------------------------------------------------------------------------------

function box(ctx, x, y, size, fill, dashed) {
  ctx.fillStyle = fill;
  ctx.fillRect(x + 0.5, y + 0.5, size - 1.5, size - 1.5);
  ctx.setLineDash(dashed ? [2, 2] : []);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(x + 0.5, y + 0.5, size - 1.5, size - 1.5);
}

function draw(s) {
  if (!s.axis) return;
  const g = (s.geometry = layout(s));
  const ratio = window.devicePixelRatio || 1;
  s.canvas.width = Math.round(g.width * ratio);
  s.canvas.height = Math.round(g.height * ratio);
  s.canvas.style.width = `${g.width}px`;
  s.canvas.style.height = `${g.height}px`;
  const ctx = s.canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, g.width, g.height);
  const axis = s.axis, cells = linked(s), sel = s.selection;
  const key = (r, c) => `${r},${c}`;
  const marked = new Map(cells.map((x) => [key(x.r, x.c), x]));
  const inputSide = sel.side === "out";  // the linked cells lie on the other side
  const [iLo, iHi] = axis.input_span, [oLo, oHi] = axis.output_span;
  const rowsOf = (lo, hi) => (s.dims === 2 ? Array.from({ length: hi - lo }, (_, i) => lo + i) : [0]);
  const real = (p, n) => p >= 0 && p < n;
  const counts = axis.mode === "transposed convolution" ? contributors(s) : null;
  const fontSize = Math.min(11, g.cell * 0.55);
  ctx.font = `${fontSize}px sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const r of rowsOf(iLo, iHi)) {
    for (let c = iLo; c < iHi; c++) {
      const [x, y] = g.input(r, c);
      const inside = real(c, axis.size) && (s.dims === 1 || real(r, axis.size));
      const m = inputSide ? marked.get(key(r, c)) : null;
      const chosen = !inputSide && sel.r === r && sel.c === c;
      box(ctx, x, y, g.cell, chosen ? DARK_RED : m ? RED : inside ? "#FFFFFF" : GREY, !inside);
      if (m && g.cell >= 14 && axis.mode !== "pooling") {
        ctx.fillStyle = "#FFFFFF";
        ctx.fillText(s.dims === 2 ? "" : `w${m.kc}`, x + g.cell / 2, y + g.cell / 2);
      }
    }
  }
  for (const r of rowsOf(oLo, oHi)) {
    for (let c = oLo; c < oHi; c++) {
      const [x, y] = g.output(r, c);
      const inside = real(c, axis.out) && (s.dims === 1 || real(r, axis.out));
      const m = !inputSide ? marked.get(key(r, c)) : null;
      const chosen = inputSide && sel.r === r && sel.c === c;
      box(ctx, x, y, g.cell, chosen ? DARK_RED : m ? RED : inside ? BLUE : GREY, !inside);
      if (counts && g.cell >= 14) {
        const n = (counts.get(c) || 0) * (s.dims === 2 ? counts.get(r) || 0 : 1);
        ctx.fillStyle = m || chosen ? "#FFFFFF" : "#555";
        ctx.fillText(String(n), x + g.cell / 2, y + g.cell / 2);
      }
    }
  }
  if (s.dims === 1) {  // lines from the chosen cell to each cell it is linked to
    const [sx, sy] = inputSide ? g.output(0, sel.c) : g.input(0, sel.c);
    ctx.setLineDash([]);
    ctx.strokeStyle = RED;
    for (const m of cells) {
      const [tx, ty] = inputSide ? g.input(0, m.c) : g.output(0, m.c);
      ctx.beginPath();
      ctx.moveTo(sx + g.cell / 2, inputSide ? sy : sy + g.cell);
      ctx.lineTo(tx + g.cell / 2, inputSide ? ty + g.cell : ty);
      ctx.stroke();
    }
  }
  ctx.fillStyle = getComputedStyle(s.root).color;
  ctx.font = "12px sans-serif";
  const inCount = s.dims === 2 ? `${axis.size}×${axis.size}` : `${axis.size}`;
  const outCount = s.dims === 2 ? `${axis.out}×${axis.out}` : `${axis.out}`;
  const pads = axis.padding_left === axis.padding_right ? `padding ${axis.padding_left}` : `padding ${axis.padding_left} left, ${axis.padding_right} right`;
  ctx.fillText(`input ${inCount}${axis.mode === "transposed convolution" ? "" : ` + ${pads}`}`, g.inLabelX, 10);
  const cropped = axis.mode === "transposed convolution" && oHi - oLo > axis.out ? " (dashed: cropped)" : "";
  ctx.fillText(`output ${outCount}${cropped}`, g.outLabelX, g.outLabelY || 10);
  s.caption.textContent = describe(s, cells);
  s.canvas.dataset.selected = `${sel.side}:${sel.r},${sel.c}`;
  s.canvas.dataset.highlighted = String(cells.length);
  s.canvas.dataset.paints = String(Number(s.canvas.dataset.paints || 0) + 1);
}

export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".da-conv");
  if (!root.__state) root.__state = setup(root);
  const s = root.__state;
  if (s.key !== data.key) {  // new numbers: start again at the first cell
    s.key = data.key;
    configure(s, data);
  }
}
