// The search page: plain JavaScript over the JSON API, no dependencies, works offline.
"use strict";

// Results per page; `?k=` in the address overrides it (the server caps it at its own maximum).
const PAGE_SIZE = Number(new URLSearchParams(location.search).get("k")) || 24;
const KEY_STORE = "photosearch.apiKey";
const $ = (id) => document.getElementById(id);

// What the grid shows: a text query, an uploaded image, or an indexed photo ("more like this").
const state = { query: null, offset: 0, run: 0, objectUrls: [] };

class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail));
    this.status = status;
  }
}

function describeDetail(detail) {
  if (Array.isArray(detail)) {  // FastAPI's list of fields at fault
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "body"}: ${d.msg}`).join("; ");
  }
  return String(detail ?? "unexpected answer");
}

// ---- API access, with the key asked for once when the server answers 401 ----

let keyPrompt = null;

function askForKey(reason) {
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => {
      const dialog = $("key-dialog");
      $("key-reason").textContent = reason;
      $("key-input").value = "";
      $("key-form").onsubmit = () => {
        localStorage.setItem(KEY_STORE, $("key-input").value.trim());
        $("forget-key").hidden = false;
        keyPrompt = null;
        fillCollections();
        resolve();
      };
      dialog.showModal();
    });
  }
  return keyPrompt;
}

async function request(path, options = {}) {
  for (;;) {
    const key = localStorage.getItem(KEY_STORE);
    const headers = new Headers(options.headers || {});
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    if (key) localStorage.removeItem(KEY_STORE);
    await askForKey(key ? "The saved API key was refused; enter another." :
      "This server asks for an API key. It is kept in this browser only.");
  }
}

async function api(path, options) {
  const response = await request(path, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new ApiError(response.status, body.detail);
  return body;
}

function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// A photo's bytes as an object URL, so the key reaches image requests too; 429 (busy) is retried.
async function imageUrl(path) {
  for (let attempt = 0; ; attempt++) {
    const response = await request(path);
    if (response.status === 429 && attempt < 4) {
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, response.statusText);
    const url = URL.createObjectURL(await response.blob());
    state.objectUrls.push(url);
    return url;
  }
}

function showImage(img, path) {
  imageUrl(path).then((url) => { img.src = url; }).catch(() => img.classList.add("missing"));
}

// ---- filters and the search itself ----

function listField(id) {
  const values = $(id).value.split(",").map((v) => v.trim()).filter(Boolean);
  return values.length ? values : null;
}

function filters() {
  const slider = $("filter-min-score");
  const minScore = slider.value === slider.min ? null : parseFloat(slider.value);  // leftmost: off
  const chosen = {
    collections: $("filter-collection").value ? [$("filter-collection").value] : null,
    tags: listField("filter-tags"),
    folders: listField("filter-folders"),
    cameras: listField("filter-cameras"),
    taken_after: $("filter-taken-after").value || null,  // a date alone: the server takes its whole day
    taken_before: $("filter-taken-before").value || null,
    sort: $("filter-sort").value === "relevance" ? null : $("filter-sort").value,
    min_score: minScore,
  };
  return Object.fromEntries(Object.entries(chosen).filter(([, v]) => v !== null));
}

function searchPage(query, offset) {
  const page = { k: PAGE_SIZE, offset, ...filters() };
  if (query.kind === "text") return postJson("/v1/search/text", { query: query.text, ...page });
  if (query.kind === "photo") return postJson("/v1/search/image", { photo_id: query.photoId, ...page });
  const form = new FormData();
  form.append("file", query.file);
  for (const [name, value] of Object.entries(page)) {
    for (const item of [].concat(value)) form.append(name, String(item));
  }
  return api("/v1/search/image", { method: "POST", body: form });
}

async function runSearch(append = false) {
  const query = state.query;
  const run = ++state.run;  // a newer search makes this one's answer stale
  if (!query) return clearResults("");
  if (!append) state.offset = 0;
  setMessage(append ? "Loading more…" : "Searching…");
  $("more").hidden = true;
  try {
    const answer = await searchPage(query, state.offset);
    if (run !== state.run) return;
    if (!append) clearResults();
    answer.hits.forEach((hit) => $("results").append(resultCard(hit)));
    state.offset += answer.hits.length;
    $("more").hidden = answer.hits.length < answer.k;
    const shown = $("results").children.length;
    setMessage(shown ? `${shown} photo${shown === 1 ? "" : "s"}` + (answer.hits.length < answer.k ? "" : " so far")
      : "No photos match. Try other words, or loosen the filters.");
  } catch (error) {
    if (run === state.run) setMessage(errorText(error), true);
  }
}

function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 503) return `The server is not ready: ${error.message}`;
    if (error.status === 429) return `The server is busy; try again in a moment. (${error.message})`;
    return `Error ${error.status}: ${error.message}`;
  }
  return `Could not reach the server: ${error.message}`;
}

function setMessage(text, isError = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", isError);
}

function clearResults(message) {
  $("results").replaceChildren();
  state.objectUrls.forEach((url) => URL.revokeObjectURL(url));
  state.objectUrls = [];
  if (message !== undefined) {
    setMessage(message);
    $("more").hidden = true;
  }
}

// ---- result cards ----

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

// A photo nobody captioned is shown by its file name (its folder is in the detail view).
function fileName(path) {
  return path.split(/[\\/]/).pop();
}

function resultCard(hit) {
  const photo = hit.photo;
  const img = el("img", { alt: photo.captions[0] || photo.path, loading: "lazy" });
  showImage(img, photo.thumbnail_url);
  const open = el("button", { type: "button", className: "open", title: `Open ${photo.path}` }, img);
  open.addEventListener("click", () => openDetail(photo.id));
  const tags = el("ul", { className: "tags" }, ...photo.tags.map((t) => el("li", { textContent: t })));
  const more = el("button", { type: "button", className: "like", textContent: "More like this" });
  more.addEventListener("click", () => searchLike(photo.id));
  const copies = (hit.duplicate_ids || []).length;  // near-identical photos this hit stands for
  return el("li", { className: "card", dataset: { photoId: photo.id } },
    open,
    el("div", { className: "score", textContent: `score ${hit.score.toFixed(3)}` }),
    ...(copies ? [el("p", { className: "copies", textContent: `+${copies} ${copies === 1 ? "copy" : "copies"}`,
      title: `Also: ${hit.duplicate_ids.map((i) => `#${i}`).join(", ")}` })] : []),
    el("p", { className: "caption", textContent: photo.captions[0] || fileName(photo.path) }),
    el("p", { className: "taken", textContent: photo.taken_at ? `taken ${photo.taken_at.slice(0, 10)}` : "" }),
    tags,
    more);
}

function searchLike(photoId) {
  $("detail").close();
  state.query = { kind: "photo", photoId };
  $("query").value = "";
  showExample(`Photos like #${photoId}`);
  runSearch();
}

function searchByFile(file) {
  if (!file) return;
  state.query = { kind: "image", file };
  $("query").value = "";
  showExample(`Photos like the image ${file.name || "pasted"}`);
  runSearch();
}

function showExample(text) {
  $("example").hidden = !text;
  $("example-text").textContent = text || "";
}

// ---- the detail view ----

async function openDetail(photoId) {
  const dialog = $("detail");
  ["detail-meta", "detail-captions", "detail-similar"].forEach((id) => $(id).replaceChildren());
  $("detail-image").removeAttribute("src");
  $("detail-title").textContent = `Photo #${photoId}`;
  dialog.dataset.photoId = photoId;
  if (!dialog.open) dialog.showModal();
  let photo;
  try {
    photo = await api(`/v1/photos/${photoId}`);
    fillFacts(photo);
  } catch (error) {
    $("detail-meta").append(el("dd", { className: "error", textContent: errorText(error) }));
    return;
  }
  fillCaptions(photoId, photo.collection);
  fillSimilar(photoId);
}

function fillFacts(photo) {
  $("detail-title").textContent = fileName(photo.path);
  $("detail-image").alt = photo.captions[0] || photo.path;
  const link = $("detail-file");
  link.href = photo.file_url;
  link.dataset.fileUrl = photo.file_url;
  imageUrl(photo.file_url).then((url) => {
    $("detail-image").src = url;
    if (localStorage.getItem(KEY_STORE)) link.href = url;  // a plain link would go without the key
  }).catch(() => showImage($("detail-image"), photo.thumbnail_url));
  const camera = [photo.camera_make, photo.camera_model].filter(Boolean).join(" ");
  const facts = [
    ["Path", photo.path], ["Collection", photo.collection], ["Folder", photo.folder || "(top)"],
    ["Taken", photo.taken_at ? new Date(photo.taken_at).toLocaleString() : "unknown"],
    ["Camera", camera || "unknown"],
    ["Size", `${photo.width ?? "?"}×${photo.height ?? "?"} ${photo.format || ""}, ${(photo.size / 1024).toFixed(0)} KB`],
    ["Tags", photo.tags.join(", ") || "none"],
  ];
  $("detail-meta").append(...facts.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
}

const SOURCE_LABELS = { collection: "from this collection", model: "suggested by the model" };

// Collection captions from the photo's own collection only, so "from this collection" holds.
async function fillCaptions(photoId, collection) {
  const list = $("detail-captions");
  try {
    const answer = await postJson("/v1/annotate", { photo_id: photoId, k: 5, collections: [collection] });
    list.append(...answer.captions.map((c) => el("li", { dataset: { source: c.source } },
      el("span", { textContent: c.text }), el("span", { className: "score", textContent: ` ${c.score.toFixed(3)}` }),
      el("span", { className: `source ${c.source}`, textContent: SOURCE_LABELS[c.source] || c.source }))));
    if (!answer.captions.length) list.append(el("li", { textContent: "No captions known." }));
  } catch (error) {
    list.append(el("li", { className: "error", textContent: errorText(error) }));
  }
}

async function fillSimilar(photoId) {
  const list = $("detail-similar");
  try {
    const answer = await postJson("/v1/search/image", { photo_id: photoId, k: 6 });
    list.append(...answer.hits.map((hit) => {
      const img = el("img", { alt: hit.photo.captions[0] || hit.photo.path });
      showImage(img, hit.photo.thumbnail_url);
      const open = el("button", { type: "button", className: "open", title: `Open ${hit.photo.path}` }, img);
      open.addEventListener("click", () => openDetail(hit.photo.id));
      return el("li", { className: "card" }, open);
    }));
  } catch (error) {
    list.append(el("li", { className: "error", textContent: errorText(error) }));
  }
}

// ---- readiness, the collection picker, wiring ----

// The picker lists the collections this key sees; with one (or none) there is nothing to choose. It
// never asks for a key itself: without one it waits for the first search to ask (askForKey calls it).
async function fillCollections() {
  const key = localStorage.getItem(KEY_STORE);
  const response = await fetch("/v1/collections", { headers: key ? { Authorization: `Bearer ${key}` } : {} })
    .catch(() => null);
  const answer = response && response.ok ? await response.json() : { collections: [] };
  const picker = $("filter-collection");
  const chosen = picker.value;
  picker.replaceChildren(el("option", { value: "", textContent: "All collections" }),
    ...answer.collections.map((c) => el("option", { value: c.name, textContent: `${c.name} (${c.photos})` })));
  picker.value = answer.collections.some((c) => c.name === chosen) ? chosen : "";
  $("collection-choice").hidden = answer.collections.length < 2;  // search still covers every collection
}

async function checkReady() {
  try {
    const ready = await api("/ready");
    $("server-state").textContent = `${ready.photos} photos · model ${ready.model}`;
    fillCollections();
    return true;
  } catch (error) {
    setMessage(errorText(error), true);
    setTimeout(checkReady, 5000);
    return false;
  }
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function wire() {
  const textSearch = () => {
    const text = $("query").value.trim();
    state.query = text ? { kind: "text", text } : null;
    showExample("");
    runSearch();
  };
  $("query").addEventListener("input", debounce(textSearch, 300));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); textSearch(); });
  const refilter = debounce(() => runSearch(), 300);
  for (const id of ["filter-tags", "filter-folders", "filter-cameras"]) {
    $(id).addEventListener("input", refilter);
  }
  for (const id of ["filter-collection", "filter-taken-after", "filter-taken-before", "filter-sort"]) {
    $(id).addEventListener("change", () => runSearch());
  }
  $("filter-min-score").addEventListener("input", (e) => {
    $("min-score-value").textContent = e.target.value === e.target.min ? "off" : e.target.value;
    refilter();
  });
  $("more").addEventListener("click", () => runSearch(true));
  $("example-clear").addEventListener("click", () => { state.query = null; showExample(""); runSearch(); });
  wireImageInput();
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail-more").addEventListener("click", () => searchLike(Number($("detail").dataset.photoId)));
  $("forget-key").hidden = !localStorage.getItem(KEY_STORE);
  $("forget-key").addEventListener("click", () => { localStorage.removeItem(KEY_STORE); $("forget-key").hidden = true; });
}

function wireImageInput() {
  const zone = $("drop-zone");
  $("image-input").addEventListener("change", (e) => searchByFile(e.target.files[0]));
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("image-input").click(); }
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    searchByFile(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) { e.preventDefault(); searchByFile(file); }
  });
}

wire();
checkReady();
