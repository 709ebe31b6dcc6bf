// Helpers shared by the browser components (prepended to their JS by pages/_components).

// A payload is one or more packs (deeparch/explore/payload.py): "DAP1", the header's length
// (uint32 little-endian), the header as UTF-8 JSON, then the arrays named in header.arrays.
// With withArrays false only the headers are read (cheap: a rerun that changed nothing).
function unpackAll(bytes, withArrays = true) {
  const packs = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  let start = 0;
  while (start < bytes.byteLength) {
    const magic = decoder.decode(bytes.subarray(start, start + 4));
    if (magic !== "DAP1") throw new Error(`not a deeparch payload at byte ${start}`);
    const length = view.getUint32(start + 4, true);
    const header = JSON.parse(decoder.decode(bytes.subarray(start + 8, start + 8 + length)));
    const base = start + 8 + length;
    let end = base;
    const arrays = {};
    for (const [name, entry] of Object.entries(header.arrays || {})) {
      const count = entry.shape.reduce((a, b) => a * b, 1);
      const size = entry.dtype === "uint8" ? 1 : 4;
      end = Math.max(end, base + entry.offset + count * size);
      if (!withArrays) continue;
      const first = bytes.byteOffset + base + entry.offset;
      const raw = bytes.buffer.slice(first, first + count * size);  // a copy: aligned for floats
      arrays[name] = {
        shape: entry.shape,
        data: entry.dtype === "uint8" ? new Uint8Array(raw) : entry.dtype === "int32" ? new Int32Array(raw) : new Float32Array(raw),
      };
    }
    delete header.arrays;
    packs.push({ header, arrays });
    start = end;
  }
  return packs;
}

// What a component remembers for this browser tab (it outlives the component when the student
// opens another page): the last point per component and job.
const MEMORY = (window.__deeparchMemory = window.__deeparchMemory || {});

// The start a component takes when it mounts: its own memory of this tab, unless the server
// changed the point since (a higher serial: the student moved the server-side sliders).
function startingPoint(memoryKey, session) {
  const remembered = MEMORY[memoryKey];
  if (remembered && remembered.serial === session.serial) return remembered.point;
  return session.start;
}

function remember(memoryKey, serial, point) {
  MEMORY[memoryKey] = { serial, point };
}

// One (H, W, C) uint8 image (C = 1 or 3), at `offset` in `pixels`, into an RGBA ImageData.
function imageData(pixels, offset, height, width, channels, target) {
  const image = target || new ImageData(width, height);
  const out = image.data;
  for (let p = 0, q = offset; p < width * height; p++, q += channels) {
    const r = pixels[q], g = channels === 3 ? pixels[q + 1] : r, b = channels === 3 ? pixels[q + 2] : r;
    out[4 * p] = r;
    out[4 * p + 1] = g;
    out[4 * p + 2] = b;
    out[4 * p + 3] = 255;
  }
  return image;
}

// Paint an ImageData scaled into ctx at (x, y, w, h) with square pixels (no smoothing).
function paintImage(ctx, image, x, y, w, h) {
  let scratch = paintImage.scratch;
  if (!scratch) scratch = paintImage.scratch = document.createElement("canvas");
  if (scratch.width !== image.width || scratch.height !== image.height) {
    scratch.width = image.width;
    scratch.height = image.height;
  }
  scratch.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, x, y, w, h);
}

// A canvas sized for the screen: CSS pixels w x h, drawn at the device's pixel ratio.
function sizeCanvas(canvas, w, h) {
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

// Count a repaint on the canvas (tests and the latency benchmark read it).
function countPaint(canvas) {
  canvas.dataset.paints = String(Number(canvas.dataset.paints || 0) + 1);
}

// A small MLP decoder: layers [{in, out, activation}], weights W (out x in, row-major) then b for
// each layer in one Float32Array. Returns the output layer's values (C*H*W in C, H, W order).
function mlpDecoder(layers, weights) {
  const buffers = layers.map((layer) => new Float32Array(layer.out));
  const offsets = [];
  let offset = 0;
  for (const layer of layers) {
    offsets.push(offset);
    offset += layer.in * layer.out + layer.out;
  }
  return function decode(z) {
    let input = z;
    layers.forEach((layer, n) => {
      const out = buffers[n], w = offsets[n], b = w + layer.in * layer.out, size = layer.in;
      for (let j = 0; j < layer.out; j++) {
        let sum = weights[b + j];
        const row = w + j * size;
        for (let i = 0; i < size; i++) sum += weights[row + i] * input[i];
        if (layer.activation === "relu") sum = sum > 0 ? sum : 0;
        else if (layer.activation === "sigmoid") sum = 1 / (1 + Math.exp(-sum));
        else if (layer.activation === "tanh") sum = Math.tanh(sum);
        out[j] = sum;
      }
      input = out;
    });
    return input;
  };
}

// Values in [0, 1] laid out C, H, W into (H, W, C) uint8, what imageData reads.
function toPixels(values, channels, height, width, target) {
  const pixels = target || new Uint8Array(values.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) {
      const v = values[c * plane + p];
      pixels[p * channels + c] = Math.round(Math.min(Math.max(v, 0), 1) * 255);
    }
  }
  return pixels;
}

// The grid cell nearest z = (z1, z2) in a side x side grid over grid.z1 x grid.z2, laid out as
// deeparch.explore.latent.latent_grid_points: row 0 is the top (z2 high), column 0 the left.
// Returns {row, column, point: the cell's own (z1, z2)}.
function gridCell(z, grid) {
  const side = grid.side;
  const step = (v, [low, high]) => Math.min(Math.max(Math.round(((v - low) / (high - low)) * (side - 1)), 0), side - 1);
  const at = (k, [low, high]) => low + (k / (side - 1)) * (high - low);
  const column = step(z[0], grid.z1), up = step(z[1], grid.z2);
  return { row: side - 1 - up, column, point: [at(column, grid.z1), at(up, grid.z2)] };
}

// Pointer handling shared by the components: pointing previews, a press or a drag chooses, and the
// release commits. at(event) turns an event into the component's value; preview(value, pressed)
// draws it (and, pressed, makes it the choice); leave() goes back to the choice; commit() tells
// Python and the tab's memory.
function followPointer(element, { at, preview, leave, commit }) {
  let pressed = false;
  element.addEventListener("pointerdown", (event) => {
    element.setPointerCapture(event.pointerId);
    pressed = true;
    preview(at(event), true);
  });
  element.addEventListener("pointermove", (event) => preview(at(event), pressed));
  const release = () => {
    if (!pressed) return;
    pressed = false;
    commit();
  };
  element.addEventListener("pointerup", release);
  element.addEventListener("pointercancel", release);
  element.addEventListener("pointerleave", () => {
    if (!pressed) leave();
  });
}
