// A line through a latent space, decoded densely on the server and scrubbed in the browser: the
// VAE's interpolation strip and the GAN studio's noise walk (with a cGAN's class samples).
// data: a session pack {job, serial, start: {lambda, set}, steps, title, memory} then the shared
// pack of deeparch.explore.latent.interpolation_payload or gan_payload:
// frames (sets, L, H, W, C) uint8 at header.lambdas; samples (sets, n, H, W, C); ends (2, H, W, C).
// Python hears of the choice only on release ("choice" state).

const BIG = 220, GAP = 10;

function setup(root) {
  const s = {
    root,
    sets: root.querySelector(".da-scrub-sets"),
    samplesBlock: root.querySelector(".da-scrub-samples-block"),
    samplesTitle: root.querySelector(".da-scrub-samples-title"),
    samples: root.querySelector(".da-scrub-samples"),
    title: root.querySelector(".da-scrub-title"),
    strip: root.querySelector(".da-scrub-strip"),
    slider: root.querySelector(".da-scrub-lambda"),
    value: root.querySelector(".da-scrub-value"),
    big: root.querySelector(".da-scrub-big"),
    images: new Map(),
  };
  const at = (event) => {
    const box = s.strip.getBoundingClientRect();
    return lambdaAt(s, event.clientX - box.left);
  };
  followPointer(s.strip, {
    at,
    preview: (lambda, pressed) => {
      if (pressed) s.chosen.lambda = lambda;
      show(s, lambda, s.chosen.set);
    },
    leave: () => show(s, s.chosen.lambda, s.chosen.set),
    commit: () => commit(s),
  });
  s.slider.addEventListener("input", () => {
    s.chosen.lambda = Number(s.slider.value);
    show(s, s.chosen.lambda, s.chosen.set, true);
  });
  s.slider.addEventListener("change", () => commit(s));
  new ResizeObserver(() => s.frames && show(s, s.shown.lambda, s.shown.set)).observe(root);
  return s;
}

function frameIndex(s, lambda) {
  return Math.min(Math.max(Math.round(lambda * (s.count - 1)), 0), s.count - 1);
}

function frame(s, set, index, source) {
  const key = `${source}:${set}:${index}`;
  let image = s.images.get(key);
  if (!image) {
    const array = source === "frames" ? s.frames : source === "samples" ? s.sampleArray : s.ends;
    const per = s.height * s.width * s.channels;
    const offset = source === "ends" ? index * per : (set * array.shape[1] + index) * per;
    image = imageData(array.data, offset, s.height, s.width, s.channels);
    s.images.set(key, image);
  }
  return image;
}

// ---- the strip: thumbnails at `steps` lambdas between the two ends ---------------------------------

function stripLayout(s) {
  const ends = s.ends ? 2 : 0;
  const width = Math.max(Math.min(s.root.clientWidth || 800, 1100), 300);
  const thumb = Math.max(16, Math.min(90, Math.floor((width - ends * GAP) / (s.steps + ends))));
  const first = (s.ends ? thumb + GAP : 0) + thumb / 2;
  return { thumb, first, last: first + (s.steps - 1) * thumb, width: (s.steps + ends) * thumb + ends * GAP };
}

function lambdaAt(s, x) {
  const g = stripLayout(s);
  return Math.min(Math.max((x - g.first) / (g.last - g.first), 0), 1);
}

function drawStrip(s, lambda, set) {
  const g = stripLayout(s), h = Math.round((g.thumb * s.height) / s.width);
  const ctx = sizeCanvas(s.strip, g.width, h + 14);
  ctx.clearRect(0, 0, g.width, h + 14);
  for (let i = 0; i < s.steps; i++) {
    const index = frameIndex(s, s.steps === 1 ? 0 : i / (s.steps - 1));
    paintImage(ctx, frame(s, set, index, "frames"), g.first - g.thumb / 2 + i * g.thumb, 0, g.thumb - 1, h);
  }
  if (s.ends) {
    for (const [n, x] of [[0, 0], [1, g.last + g.thumb / 2 + GAP]]) {
      paintImage(ctx, frame(s, 0, n, "ends"), x, 0, g.thumb, h);
      ctx.strokeStyle = "#F58518";
      ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, 1.5, g.thumb - 3, h - 3);
    }
  }
  const x = g.first + lambda * (g.last - g.first);
  ctx.strokeStyle = "#E45756";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(x, 0);
  ctx.lineTo(x, h + 4);
  ctx.stroke();
  ctx.fillStyle = "#E45756";
  ctx.beginPath();
  ctx.moveTo(x, h + 2); ctx.lineTo(x - 6, h + 13); ctx.lineTo(x + 6, h + 13);
  ctx.fill();
}

function drawSamples(s, set) {
  if (!s.sampleArray) return;
  const n = s.sampleArray.shape[1], columns = 8, rows = Math.ceil(n / columns);
  const cell = Math.max(24, Math.min(60, Math.floor(Math.min(s.root.clientWidth || 600, 600) / columns)));
  const h = Math.round((cell * s.height) / s.width);
  const ctx = sizeCanvas(s.samples, columns * cell, rows * h);
  for (let i = 0; i < n; i++) {
    paintImage(ctx, frame(s, set, i, "samples"), (i % columns) * cell, Math.floor(i / columns) * h, cell - 1, h - 1);
  }
  s.samplesTitle.textContent = s.samplesTitleText.replace("{set}", s.setNames[set]);
  countPaint(s.samples);
}

function show(s, lambda, set, fromSlider) {
  s.shown = { lambda, set };
  const index = frameIndex(s, lambda);
  drawStrip(s, lambda, set);
  const ctx = sizeCanvas(s.big, BIG, Math.round((BIG * s.height) / s.width));
  paintImage(ctx, frame(s, set, index, "frames"), 0, 0, BIG, Math.round((BIG * s.height) / s.width));
  if (s.drawnSet !== set) {
    s.drawnSet = set;
    drawSamples(s, set);
    s.sets.querySelectorAll("button").forEach((b, i) => b.setAttribute("aria-pressed", String(i === set)));
  }
  const shownLambda = s.lambdas[index];
  if (!fromSlider) s.slider.value = String(lambda);
  s.value.textContent = `lambda = ${shownLambda.toFixed(2)}`;
  s.title.textContent = s.titleText;
  s.big.dataset.frame = `${set}:${index}`;
  countPaint(s.big);
}

function configure(s, session, shared) {
  const header = shared.header, arrays = shared.arrays;
  const sameJob = s.job === session.job && s.serial === session.serial && s.chosen;
  s.job = session.job;
  s.serial = session.serial;
  s.name = header.name;
  s.memoryKey = `${session.memory}:${session.job}`;
  s.frames = arrays.frames;
  s.sampleArray = arrays.samples || null;
  s.ends = arrays.ends || null;
  [, s.count, s.height, s.width, s.channels] = s.frames.shape;
  s.lambdas = header.lambdas;
  s.steps = session.steps;
  s.titleText = session.title || header.title;
  s.samplesTitleText = header.samples_title || "";
  s.setNames = header.sets.length ? header.sets : [""];
  s.images = new Map();
  s.drawnSet = null;
  s.slider.step = String(1 / (s.count - 1));
  s.samplesBlock.style.display = s.sampleArray ? "" : "none";
  if (!sameJob) {
    const start = startingPoint(s.memoryKey, session) || {};
    s.chosen = {
      lambda: Math.min(Math.max(Number(start.lambda ?? 0.5), 0), 1),
      set: Math.min(Math.max(Math.round(Number(start.set ?? 0)), 0), s.setNames.length - 1),
    };
  }
  s.sets.replaceChildren();
  header.sets.forEach((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.className = `da-scrub-set da-scrub-set-${i}`;
    button.addEventListener("pointerenter", () => show(s, s.chosen.lambda, i));
    button.addEventListener("pointerleave", () => show(s, s.chosen.lambda, s.chosen.set));
    button.addEventListener("click", () => {
      s.chosen.set = i;
      show(s, s.chosen.lambda, i);
      commit(s);
    });
    s.sets.append(button);
  });
  show(s, s.chosen.lambda, s.chosen.set);
}

function commit(s) {
  remember(s.memoryKey, s.serial, { ...s.chosen });
  s.setStateValue("choice", { lambda: s.chosen.lambda, set: s.chosen.set, name: s.name });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".da-scrub");
  if (!root.__state) root.__state = setup(root);
  const s = root.__state;
  s.setStateValue = setStateValue;
  const [session, shared] = unpackAll(data, false);
  const signature = `${shared.header.name}|${JSON.stringify(session.header)}`;
  if (s.signature === signature) return;  // nothing new
  s.signature = signature;
  configure(s, session.header, unpackAll(data)[1]);
}
