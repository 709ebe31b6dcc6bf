// A canvas to draw a digit on: white strokes on black, round brush. The whole canvas takes the
// pointer from the first event (nothing lies over it, no toolbar): a stroke may start anywhere,
// the corners included. Python hears of a drawing when a stroke ends ("drawing" state: a PNG
// data URL and the stroke count), and of a clear.
// data: {side, brush, start}: start is the drawing Python holds ({png, strokes}) or null.

function setup(root) {
  const s = {
    root,
    canvas: root.querySelector(".da-draw-canvas"),
    clear: root.querySelector(".da-draw-clear"),
    hint: root.querySelector(".da-draw-hint"),
    strokes: 0,
    last: null,
  };
  s.context = s.canvas.getContext("2d");
  const at = (event) => {
    const box = s.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * s.canvas.width) / box.width,
      ((event.clientY - box.top) * s.canvas.height) / box.height,
    ];
  };
  s.canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    s.canvas.setPointerCapture(event.pointerId);
    s.last = at(event);
    dot(s, s.last);
  });
  s.canvas.addEventListener("pointermove", (event) => {
    if (!s.last) return;
    // The browser merges fast moves into one event: draw every point it coalesced.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) {
      const point = at(each);
      line(s, s.last, point);
      s.last = point;
    }
  });
  const end = () => {
    if (!s.last) return;
    s.last = null;
    s.strokes += 1;
    send(s);
  };
  s.canvas.addEventListener("pointerup", end);
  s.canvas.addEventListener("pointercancel", end);
  s.clear.addEventListener("click", () => {
    blank(s);
    send(s);
  });
  return s;
}

function blank(s) {
  s.context.fillStyle = "#000000";
  s.context.fillRect(0, 0, s.canvas.width, s.canvas.height);
  s.strokes = 0;
  s.last = null;
  showState(s);
}

function dot(s, [x, y]) {
  s.context.fillStyle = "#ffffff";
  s.context.beginPath();
  s.context.arc(x, y, s.brush / 2, 0, 2 * Math.PI);
  s.context.fill();
}

function line(s, [x0, y0], [x1, y1]) {
  const c = s.context;
  c.strokeStyle = "#ffffff";
  c.lineWidth = s.brush;
  c.lineCap = "round";
  c.lineJoin = "round";
  c.beginPath();
  c.moveTo(x0, y0);
  c.lineTo(x1, y1);
  c.stroke();
}

function showState(s) {
  s.clear.disabled = s.strokes === 0;
  s.hint.textContent = s.strokes
    ? `${s.strokes} stroke${s.strokes === 1 ? "" : "s"}`
    : "draw with the mouse, a pen or a finger";
}

function send(s) {
  showState(s);
  s.root.dataset.strokes = String(s.strokes);
  const png = s.strokes ? s.canvas.toDataURL("image/png") : null;
  s.setStateValue("drawing", { png, strokes: s.strokes });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".da-draw");
  const first = !root.__state;
  if (first) root.__state = setup(root);
  const s = root.__state;
  s.setStateValue = setStateValue;
  s.brush = Number(data.brush) || 18;
  const side = Number(data.side) || 224;
  if (s.side === side) return;  // a rerun: the drawing stays as the student left it
  s.side = side;
  s.canvas.width = side;
  s.canvas.height = side;
  s.canvas.style.width = `${side}px`;
  s.canvas.style.height = `${side}px`;
  blank(s);
  if (first && data.start && data.start.png) restore(s, data.start);
}

// Back on the page after another one: the drawing the server still holds is shown again.
function restore(s, start) {
  const image = new Image();
  image.onload = () => {
    s.context.drawImage(image, 0, 0, s.canvas.width, s.canvas.height);
    s.strokes = Number(start.strokes) || 1;
    s.root.dataset.strokes = String(s.strokes);
    showState(s);
  };
  image.src = start.png;
}
