// The review page's actions: buttons and keyboard shortcuts post JSON to the app, then go where it says.
"use strict";

const photo = JSON.parse(document.getElementById("page-data").textContent);
const message = document.getElementById("message");
let busy = false;

function show(text) {
  message.textContent = text;
  message.hidden = false;
}

async function post(url, body) {
  if (busy) return;
  busy = true;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) {
      show(answer.error || `failed (${response.status})`);
      return;
    }
    window.location.assign(answer.next);
  } catch (error) {
    show(`the review server did not answer (${error.message})`);
  } finally {
    busy = false;
  }
}

const base = `/api/photos/${photo.number}`;
const actions = {
  confirm: (id) => post(`${base}/confirm`, { individual_id: id }),
  new: () => post(`${base}/new`, { individual_id: document.getElementById("new-id").value }),
  skip: () => post(`${base}/skip`),
  undo: () => post("/api/undo", { photo: null }),
  "undo-this": () => post("/api/undo", { photo: photo.number }),
  features: (src) => showFeatures(src),
};

async function showFeatures(src) {
  const figure = document.getElementById("pair");
  const image = document.getElementById("pair-image");
  const caption = document.getElementById("pair-caption");
  figure.hidden = false;
  image.hidden = true;
  caption.textContent = "matching local features…";
  const response = await fetch(src);
  if (!response.ok) {
    caption.textContent = await response.text();
    return;
  }
  image.src = URL.createObjectURL(await response.blob());
  image.hidden = false;
  caption.textContent = "query (left) and candidate (right): lines join matching local features (RANSAC inliers)";
  figure.scrollIntoView({ block: "nearest" });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  if (!button || button.disabled) return;
  const action = button.dataset.action;
  actions[action](action === "features" ? button.dataset.src : button.dataset.id);
});

// a candidate's rank confirms it; the new_individual answer's rank marks the photo new
function pickRank(rank) {
  const card = document.querySelector(`.card[data-rank="${rank}"]`);
  if (!card) return;
  const button = card.querySelector('[data-action="confirm"], [data-action="new"]');
  if (button && !button.disabled) button.click();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.matches("input, textarea")) {
    if (event.key === "Enter") {
      event.preventDefault();
      document.querySelector('[data-action="new"]').click();
    } else if (event.key === "Escape") {
      event.target.blur();
    }
    return;
  }
  const key = event.key.toLowerCase();
  const press = (selector) => {
    const element = document.querySelector(selector);
    if (element && !element.disabled) element.click();
  };
  if (/^[1-9]$/.test(key)) pickRank(Number(key));
  else if (key === "n") press('[data-action="new"]');
  else if (key === "s") press('[data-action="skip"]');
  else if (key === "u") press('[data-action="undo"]');
  else if (key === "arrowleft") press("#previous");
  else if (key === "arrowright") press("#next");
  else return;
  event.preventDefault();
});
