// The VAE latent explorer: decodes z in the browser on every pointer move or slider step.
// data: a session pack {job, serial, start} then the shared pack of
// deeparch.explore.latent.explorer_payload (mode "mlp": the decoder's weights; "grid": a dense
// grid of decodes). Python hears of the chosen point only on release ("point" state).

const SCATTER = 420, DECODED = 240;
const MARGIN = { l: 46, r: 10, t: 8, b: 36 };

function niceTicks(low, high, count) {
  const raw = (high - low) / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + 1e-9; t += step) ticks.push(Math.round(t / step) * step);
  return ticks;
}

function setup(root) {
  const s = {
    root,
    scatter: root.querySelector(".da-lat-scatter"),
    decoded: root.querySelector(".da-lat-decoded"),
    title: root.querySelector(".da-lat-title"),
    note: root.querySelector(".da-lat-note"),
    legend: root.querySelector(".da-lat-legend"),
    sliders: root.querySelector(".da-lat-sliders"),
    index: root.querySelector(".da-lat-index"),
  };
  s.background = document.createElement("canvas");
  const at = (event) => {
    const box = s.scatter.getBoundingClientRect();
    return toLatent(s, event.clientX - box.left, event.clientY - box.top);
  };
  followPointer(s.scatter, {
    at,
    // Pointing decodes under the pointer; only a press or a drag chooses the point.
    preview: ([a, b], pressed) => {
      const z = moved(s, s.chosen, a, b);
      if (pressed) s.chosen = z;
      show(s, z);
    },
    leave: () => show(s, s.chosen),
    commit: () => commit(s),
  });
  root.querySelector(".da-lat-to-mean").addEventListener("click", () => {
    const n = s.means.shape[0], d = s.dims;
    const i = Math.min(Math.max(Math.round(Number(s.index.value) || 0), 0), n - 1);
    s.index.value = String(i);
    s.chosen = clamp(s, Array.from(s.means.data.subarray(i * d, (i + 1) * d)));
    show(s, s.chosen);
    commit(s);
  });
  root.querySelector(".da-lat-to-zero").addEventListener("click", () => {
    s.chosen = clamp(s, new Array(s.dims).fill(0));
    show(s, s.chosen);
    commit(s);
  });
  return s;
}

// ---- coordinates ----------------------------------------------------------------------------

function plotBox() {
  return { x: MARGIN.l, y: MARGIN.t, w: SCATTER - MARGIN.l - MARGIN.r, h: SCATTER - MARGIN.t - MARGIN.b };
}

function toLatent(s, px, py) {
  const b = plotBox(), [[x0, x1], [y0, y1]] = s.view;
  const fx = Math.min(Math.max((px - b.x) / b.w, 0), 1), fy = Math.min(Math.max((py - b.y) / b.h, 0), 1);
  return [x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)];
}

function toPixel(s, a, b) {
  const box = plotBox(), [[x0, x1], [y0, y1]] = s.view;
  return [box.x + ((a - x0) / (x1 - x0)) * box.w, box.y + ((y1 - b) / (y1 - y0)) * box.h];
}

function project(s, z) {
  const d = s.dims, axes = s.axes;
  let a = 0, b = 0;
  for (let i = 0; i < d; i++) {
    a += axes[i] * z[i];
    b += axes[d + i] * z[i];
  }
  return [a, b];
}

// z moved so that its projection lands on (a, b); the other directions stay (PCA axes above 2-D).
function moved(s, z, a, b) {
  const d = s.dims, axes = s.axes, [pa, pb] = project(s, z);
  const out = z.slice();
  for (let i = 0; i < d; i++) out[i] += (a - pa) * axes[i] + (b - pb) * axes[d + i];
  return clamp(s, out);
}

function clamp(s, z) {
  return z.map((v, i) => Math.min(Math.max(v, s.bounds[i][0]), s.bounds[i][1]));
}

// ---- decoding -------------------------------------------------------------------------------

function decoderFor(s, header, arrays) {
  const [channels, height, width] = header.image;
  const size = channels * height * width;
  s.pixels = new Uint8Array(size);
  s.image = new ImageData(width, height);
  if (header.mode === "mlp") {
    const decode = mlpDecoder(header.layers, arrays.weights.data);
    const input = new Float32Array(s.dims);
    return (z) => {
      input.set(z);
      toPixels(decode(input), channels, height, width, s.pixels);
      return imageData(s.pixels, 0, height, width, channels, s.image);
    };
  }
  const grid = header.grid, pixels = arrays.grid.data;
  return (z) => {  // the nearest of side x side decodes
    const { row, column, point } = gridCell(z, grid);
    s.gridPoint = point;
    return imageData(pixels, (row * grid.side + column) * size, height, width, channels, s.image);
  };
}

// ---- building and drawing -----------------------------------------------------------------------

function configure(s, session, shared) {
  const header = shared.header, arrays = shared.arrays;
  const sameJob = s.job === session.job && s.dims === header.latent_dim && s.serial === session.serial;
  s.job = session.job;
  s.serial = session.serial;
  s.name = header.name;
  s.memoryKey = `latent:${session.job}`;
  s.dims = header.latent_dim;
  s.view = header.view;
  s.axes = arrays.axes.data;
  s.means = arrays.means;
  s.bounds = header.mode === "grid" ? [header.grid.z1, header.grid.z2] : new Array(s.dims).fill([-header.z_bound, header.z_bound]);
  s.gridPoint = null;
  s.decode = decoderFor(s, header, arrays);
  const [channels, height, width] = header.image;
  s.decodedSize = [DECODED, Math.round((DECODED * height) / width)];
  if (!sameJob) {
    let start = startingPoint(s.memoryKey, session);
    if (!start || start.length !== s.dims) start = header.start;
    s.chosen = clamp(s, start.slice());
  }
  s.index.max = String(s.means.shape[0] - 1);
  s.note.textContent = header.mode === "mlp"
    ? `Decoded here in your browser with the decoder's own weights (step ${header.step}), the same numbers as on the server.`
    : `The nearest of ${header.grid.side}×${header.grid.side} decodes the server made at step ${header.step}, over where the validation means lie.`;
  buildSliders(s, header);
  drawBackground(s, header, arrays);
  show(s, s.chosen);
}

function buildSliders(s, header) {
  const signature = JSON.stringify(s.bounds);
  if (s.sliderSignature === signature) return;
  s.sliderSignature = signature;
  s.sliders.replaceChildren();
  s.inputs = [];
  for (let d = 0; d < s.dims; d++) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    const value = document.createElement("output");
    Object.assign(input, { type: "range", min: String(s.bounds[d][0]), max: String(s.bounds[d][1]), step: "0.05" });
    input.className = `da-lat-z da-lat-z${d + 1}`;
    input.setAttribute("aria-label", `z${d + 1}`);
    label.append(`z${d + 1}`, input, value);
    input.addEventListener("input", () => {
      s.chosen = s.chosen.slice();
      s.chosen[d] = Number(input.value);
      show(s, s.chosen, d);
    });
    input.addEventListener("change", () => commit(s));
    s.sliders.append(label);
    s.inputs.push({ input, value });
  }
}

function drawBackground(s, header, arrays) {
  const ctx = sizeCanvas(s.background, SCATTER, SCATTER);
  const box = plotBox(), [[x0, x1], [y0, y1]] = s.view;
  ctx.clearRect(0, 0, SCATTER, SCATTER);
  ctx.fillStyle = "#FFFFFF";
  ctx.fillRect(box.x, box.y, box.w, box.h);
  const text = getComputedStyle(s.root).color;
  ctx.strokeStyle = "#E5E5E5";
  ctx.fillStyle = text;
  ctx.font = "11px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of niceTicks(x0, x1, 5)) {
    const [px] = toPixel(s, t, y0);
    ctx.beginPath(); ctx.moveTo(px, box.y); ctx.lineTo(px, box.y + box.h); ctx.stroke();
    ctx.fillText(String(+t.toFixed(2)), px, box.y + box.h + 3);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of niceTicks(y0, y1, 5)) {
    const [, py] = toPixel(s, x0, t);
    ctx.beginPath(); ctx.moveTo(box.x, py); ctx.lineTo(box.x + box.w, py); ctx.stroke();
    ctx.fillText(String(+t.toFixed(2)), box.x - 4, py);
  }
  ctx.textAlign = "center";
  ctx.fillText(header.axis_titles[0], box.x + box.w / 2, SCATTER - 8);
  ctx.save();
  ctx.translate(10, box.y + box.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(header.axis_titles[1], 0, 0);
  ctx.restore();
  const points = arrays.points.data, labels = arrays.labels.data, colours = header.colours;
  ctx.globalAlpha = 0.7;
  for (let n = 0; n < labels.length; n++) {
    const [px, py] = toPixel(s, points[2 * n], points[2 * n + 1]);
    if (px < box.x || px > box.x + box.w || py < box.y || py > box.y + box.h) continue;
    ctx.fillStyle = colours[labels[n] % colours.length];
    ctx.fillRect(px - 1.5, py - 1.5, 3, 3);
  }
  ctx.globalAlpha = 1;
  s.legend.replaceChildren();
  const names = header.class_names.length ? header.class_names : colours.map((_, i) => String(i));
  names.forEach((name, i) => {
    const item = document.createElement("span");
    item.textContent = name;
    item.style.setProperty("--dot", colours[i % colours.length]);
    s.legend.append(item);
  });
}

function show(s, z, fromSlider) {
  const image = s.decode(z);
  const [w, h] = s.decodedSize;
  const dctx = sizeCanvas(s.decoded, w, h);
  paintImage(dctx, image, 0, 0, w, h);
  const ctx = sizeCanvas(s.scatter, SCATTER, SCATTER);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, s.scatter.width, s.scatter.height);
  ctx.drawImage(s.background, 0, 0);
  ctx.setTransform(window.devicePixelRatio || 1, 0, 0, window.devicePixelRatio || 1, 0, 0);
  const [px, py] = toPixel(s, ...project(s, z));
  for (const [colour, width] of [["#FFFFFF", 4], ["#000000", 2]]) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(px - 6, py - 6); ctx.lineTo(px + 6, py + 6);
    ctx.moveTo(px + 6, py - 6); ctx.lineTo(px - 6, py + 6);
    ctx.stroke();
  }
  s.title.textContent = s.dims === 2 ? `decode(${z[0].toFixed(2)}, ${z[1].toFixed(2)})` : "decode(z)";
  if (s.gridPoint) s.title.textContent += `: the grid's nearest, (${s.gridPoint.map((v) => v.toFixed(2)).join(", ")})`;
  s.inputs.forEach(({ input, value }, d) => {
    if (d !== fromSlider) input.value = String(z[d]);
    value.textContent = z[d].toFixed(2);
  });
  s.decoded.dataset.z = z.join(",");
  countPaint(s.decoded);
}

function commit(s) {
  remember(s.memoryKey, s.serial, s.chosen);
  s.setStateValue("point", { z: s.chosen, name: s.name });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".da-lat");
  if (!root.__state) root.__state = setup(root);
  const s = root.__state;
  s.setStateValue = setStateValue;
  const [session, shared] = unpackAll(data, false);
  if (s.drawn === `${shared.header.name}:${session.header.serial}`) return;  // nothing new
  try {
    configure(s, session.header, unpackAll(data)[1]);
    s.drawn = `${shared.header.name}:${session.header.serial}`;  // only once drawn: else retried
  } catch (error) {
    s.title.textContent = "The explorer could not draw this model";
    s.note.textContent = `${error}: turn "answer in the browser" off to decode on the server.`;
    throw error;
  }
}
