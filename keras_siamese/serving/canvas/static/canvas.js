// The similarity canvas: drawing, then asking the server's model.
"use strict";

const BACKGROUND = "#000000";
const pads = { left: document.getElementById("left"), right: document.getElementById("right") };
const examples = []; // {label, image}

function $(id) { return document.getElementById(id); }

function say(text) { $("message").textContent = text || ""; }

function clearPad(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function point(canvas, event) {
  const box = canvas.getBoundingClientRect();
  return {
    x: (event.clientX - box.left) * (canvas.width / box.width),
    y: (event.clientY - box.top) * (canvas.height / box.height),
  };
}

function enableDrawing(canvas) {
  const ctx = canvas.getContext("2d");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(canvas, event);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last === null) return;
    const next = point(canvas, event);
    stroke(last, next);
    last = next;
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  function stroke(from, to) {
    const eraser = $("tool-eraser").checked;
    ctx.strokeStyle = eraser ? BACKGROUND : $("pen-color").value;
    ctx.lineWidth = Number($("pen-size").value);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
}

function loadFile(canvas, file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const image = new Image();
    image.onload = () => {
      clearPad(canvas);
      const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
      const w = image.width * scale, h = image.height * scale;
      canvas.getContext("2d").drawImage(image, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    };
    image.onerror = () => say("That file is not an image the browser can read.");
    image.src = reader.result;
  };
  reader.readAsDataURL(file);
}

async function ask(route, body) {
  const response = await fetch(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

const fmt = (x) => Number(x).toFixed(4);

async function compare() {
  say("");
  try {
    const answer = await ask("/api/compare", {
      left: pads.left.toDataURL("image/png"),
      right: pads.right.toDataURL("image/png"),
    });
    $("verdict").textContent = answer.verdict;
    $("verdict").className = answer.verdict;
    $("similarity").textContent = fmt(answer.similarity);
    $("distance").textContent = fmt(answer.distance);
    $("threshold").textContent = fmt(answer.threshold);
    $("result").hidden = false;
  } catch (error) {
    say(error.message);
  }
}

function renderExamples() {
  const list = $("examples");
  list.replaceChildren();
  for (const example of examples) {
    const item = document.createElement("li");
    const thumb = document.createElement("img");
    thumb.src = example.image;
    thumb.alt = example.label;
    item.append(thumb, example.label);
    list.append(item);
  }
}

function keepExample() {
  const label = $("example-label").value.trim() || String(examples.length + 1);
  if (examples.some((e) => e.label === label)) {
    say(`There already is an example labelled "${label}": one example per class.`);
    return;
  }
  examples.push({ label, image: pads.left.toDataURL("image/png") });
  renderExamples();
  clearPad(pads.left);
  $("example-label").value = "";
  say("");
}

async function classify() {
  say("");
  if (examples.length === 0) {
    say("Keep at least one example first.");
    return;
  }
  try {
    const answer = await ask("/api/classify", {
      image: pads.right.toDataURL("image/png"),
      supports: examples,
    });
    $("prediction").textContent = answer.predicted;
    $("prediction-line").hidden = false;
    const body = $("ranking").querySelector("tbody");
    body.replaceChildren();
    for (const row of answer.ranking) {
      const tr = document.createElement("tr");
      for (const value of [row.label, fmt(row.distance), fmt(row.similarity)]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      body.append(tr);
    }
    $("ranking").hidden = false;
  } catch (error) {
    say(error.message);
  }
}

async function searchGallery() {
  say("");
  try {
    const answer = await ask("/api/search", {
      image: pads.left.toDataURL("image/png"),
      k: Number($("gallery-k").value),
    });
    const list = $("gallery-results");
    list.replaceChildren();
    for (const row of answer.results) {
      const item = document.createElement("li");
      if (row.image) {
        const thumb = document.createElement("img");
        thumb.src = row.image;
        thumb.alt = row.id;
        item.append(thumb);
      }
      item.append(`${row.id} (distance ${fmt(row.distance)})`);
      list.append(item);
    }
  } catch (error) {
    say(error.message);
  }
}

async function showInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    const shape = info.input_shape.join(" x ");
    $("info").textContent =
      `Model: ${info.dataset} (split ${info.split}), ${info.distance} distance, input ${shape}; ` +
      `"same" at distance <= ${fmt(info.threshold)} (${info.threshold_source}).`;
    if (info.gallery > 0) {
      $("gallery-size").textContent = String(info.gallery);
      $("gallery-panel").hidden = false;
    }
  } catch (error) {
    $("info").textContent = "The model's description could not be loaded.";
  }
}

for (const [side, canvas] of Object.entries(pads)) {
  clearPad(canvas);
  enableDrawing(canvas);
  $(`clear-${side}`).addEventListener("click", () => clearPad(canvas));
  $(`file-${side}`).addEventListener("change", (event) => loadFile(canvas, event.target.files[0]));
}
$("compare").addEventListener("click", compare);
$("keep-example").addEventListener("click", keepExample);
$("clear-examples").addEventListener("click", () => { examples.length = 0; renderExamples(); });
$("classify").addEventListener("click", classify);
$("search").addEventListener("click", searchGallery);
showInfo();
