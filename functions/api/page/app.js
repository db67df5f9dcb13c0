// The upload page: asks once for the API key, takes files and folders, checks each (type by content, sha256),
// skips what the library already has, sends the rest a few at a time with progress, follows every photo to its
// final status, and shows the owner's library. What was sent survives a reload (localStorage, per owner).

import { Api, ApiError, backoff, sleep } from "./api.js";
import { sha256Hex, sha256OfText } from "./sha256.js";
import { Cancelled, send } from "./transfer.js";

const SENDING_AT_ONCE = 3;
const TERMINAL = new Set(["READY", "DUPLICATE", "REJECTED", "FAILED"]);
const CLEARABLE = ["done", "skipped", "not-image", "cancelled"]; // "Clear finished" (a row not sent stays for Retry)
const KEY_STORAGE = "photopipe.key";
const $ = (id) => document.getElementById(id);
const base = new URL(location.pathname.endsWith("/") ? location.pathname : `${location.pathname}/`, location.origin).href;

let api = null;
let owner = null;
const entries = []; // every file of this page, in the order added
let sending = 0;

// --- what a file is, by its first bytes (as the pipeline judges it) ---------------------------------------------
const startsWith = (bytes, prefix, at = 0) => prefix.every((value, index) => bytes[at + index] === value);
const ascii = (text) => [...text].map((c) => c.charCodeAt(0));
const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1"];

function brands(bytes) {
  const size = Math.min(Math.max(new DataView(bytes.buffer).getUint32(0), 16), bytes.length);
  const found = [];
  for (let at = 8; at + 4 <= size; at += 4) if (at !== 12) found.push(String.fromCharCode(...bytes.slice(at, at + 4)));
  return found;
}

export function contentType(bytes) {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"))) return "image/gif";
  if (startsWith(bytes, ascii("RIFF")) && startsWith(bytes, ascii("WEBP"), 8)) return "image/webp";
  for (const tiff of [[0x49, 0x49, 0x2a, 0], [0x4d, 0x4d, 0, 0x2a], [0x49, 0x49, 0x2b, 0], [0x4d, 0x4d, 0, 0x2b]]) {
    if (startsWith(bytes, tiff)) return "image/tiff";
  }
  if (bytes.length >= 16 && startsWith(bytes, ascii("ftyp"), 4)) {
    const found = brands(bytes);
    if (found.some((brand) => brand === "avif" || brand === "avis")) return "image/avif";
    if (found.some((brand) => HEIF_BRANDS.includes(brand))) return "image/heic";
  }
  return null;
}

// --- a little formatting ----------------------------------------------------------------------------------------
function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) [value, unit] = [value / 1024, unit + 1];
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function smallestVariant(media) {
  const variants = Object.values(media?.variants ?? {});
  return variants.sort((a, b) => a.width - b.width)[0] ?? null;
}

function describe(media) {
  switch (media.status) {
    case "READY":
      return `Ready: ${Object.keys(media.variants ?? {}).length} sizes, ${media.width}×${media.height}`;
    case "DUPLICATE":
      return null; // a link to the original, made in render
    case "REJECTED":
      return `Refused: ${media.reason_detail || media.reason}`;
    case "FAILED":
      return `Failed: ${media.error || "the pipeline gave up"}`;
    case "PENDING_UPLOAD":
      return "Waiting for its bytes";
    default:
      return "Processing…";
  }
}

// --- what was sent, kept across reloads ------------------------------------------------------------------------
function remembered() {
  try {
    return JSON.parse(localStorage.getItem(`photopipe.uploads.${owner}`)) ?? {};
  } catch {
    return {};
  }
}

// What a row needs to come back after a reload (not the media: its URLs expire; it is asked for again).
function remember(entry) {
  if (!entry.idempotencyKey) return;
  const kept = remembered();
  kept[entry.idempotencyKey] = {
    name: entry.name, size: entry.size, mediaId: entry.mediaId, phase: entry.phase, message: entry.message ?? null,
    at: Date.now(),
  };
  keep(Object.fromEntries(Object.entries(kept).sort((a, b) => b[1].at - a[1].at).slice(0, 500)));
}

function forget(entry) {
  const kept = remembered();
  delete kept[entry.idempotencyKey];
  keep(kept);
}

function keep(kept) {
  try {
    localStorage.setItem(`photopipe.uploads.${owner}`, JSON.stringify(kept));
  } catch {
    // storage full or refused: this page goes on; only a reload would forget these rows
  }
}

// --- one row per file ------------------------------------------------------------------------------------------
// phase: checking → ready (to send) | skipped | not-image → waiting → sending → processing → done | error | cancelled
function render(entry) {
  if (!entry.row) {
    entry.row = element("li");
    $("files-list").append(entry.row);
  }
  const media = entry.media;
  const thumb = element("img", { className: "thumb", alt: "" });
  const variant = smallestVariant(media);
  if (variant && (media.status === "READY" || media.status === "DUPLICATE")) {
    if (media.placeholder?.color) thumb.style.background = media.placeholder.color;
    thumb.src = variant.url;
    thumb.alt = `${entry.name}, ${variant.width}×${variant.height}`;
  }
  const status = element("span", { className: `status ${media?.status ?? entry.phase}` });
  if (entry.phase === "done" || entry.phase === "skipped") {
    if (media?.status === "DUPLICATE") {
      status.append("Duplicate of ", mediaLink(media.duplicate_of));
    } else if (media) {
      status.append(describe(media));
    }
    if (entry.message) status.append(` ${entry.message}`);
  } else {
    status.append(entry.message ?? "");
  }
  const actions = element("span", { className: "actions" });
  if (["checking", "ready", "waiting", "sending"].includes(entry.phase)) {
    actions.append(button("Cancel", `Cancel ${entry.name}`, () => cancel(entry)));
  }
  const failed = media?.status === "FAILED" && entry.phase === "done";
  if (failed || ((entry.phase === "error" || entry.phase === "cancelled") && entry.file)) {
    actions.append(button("Retry", `Retry ${entry.name}`, () => retry(entry)));
  }
  const progress = element("progress", { max: Math.max(entry.size, 1), value: entry.sent ?? 0 });
  progress.setAttribute("aria-label", `${entry.name} sent`);
  progress.hidden = entry.phase !== "sending";
  entry.row.replaceChildren(
    thumb,
    element("span", { className: "name" }, entry.name, element("span", { className: "status" }, ` · ${size(entry.size)}`)),
    actions,
    element("span", {}, status, progress),
  );
  entry.row.dataset.phase = entry.phase;
  entry.row.dataset.status = media?.status ?? "";
  entry.row.dataset.mediaId = entry.mediaId ?? "";
  entry.row.dataset.name = entry.name;
  updateTotals();
}

function button(text, label, onClick) {
  const node = element("button", { type: "button", textContent: text, className: "secondary" });
  node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

function mediaLink(mediaId) {
  const link = element("a", { href: `#media/${mediaId}`, textContent: mediaId });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openMedia(mediaId);
  });
  return link;
}

let progressUpdates = 0;

function updateTotals() {
  const toSend = entries.filter(
    (e) => ["waiting", "sending"].includes(e.phase) || (["processing", "done"].includes(e.phase) && e.sent !== undefined),
  );
  const total = toSend.reduce((sum, e) => sum + e.size, 0);
  const sent = toSend.reduce((sum, e) => sum + (e.sent ?? 0), 0);
  const finished = entries.filter((e) => ["done", "skipped", "not-image", "error", "cancelled"].includes(e.phase));
  $("overall").hidden = entries.length === 0;
  $("overall-bytes").max = Math.max(total, 1);
  $("overall-bytes").value = sent;
  $("overall-text").textContent =
    `${size(sent)} of ${size(total)} · ${finished.length} of ${entries.length} photos finished`;
  document.body.dataset.progressUpdates = String(++progressUpdates);
  const ready = entries.filter((e) => e.phase === "ready");
  const checking = entries.filter((e) => e.phase === "checking").length;
  const readyBytes = ready.reduce((sum, e) => sum + e.size, 0);
  $("summary").textContent = checking
    ? `Checking ${checking} file(s)…`
    : ready.length
      ? `${ready.length} photo(s), ${size(readyBytes)}, ready to send.`
      : entries.length
        ? ""
        : "No photos added yet.";
  $("start").disabled = checking > 0 || ready.length === 0;
  $("start").textContent = ready.length ? `Upload ${ready.length} photo(s) (${size(readyBytes)})` : "Upload";
  $("cancel-all").disabled = !entries.some((e) => ["ready", "waiting", "sending", "checking"].includes(e.phase));
  $("clear").disabled = !entries.some((e) => CLEARABLE.includes(e.phase));
}

// --- adding files ----------------------------------------------------------------------------------------------
async function add(files) {
  const added = [...files].filter((file) => !file.name.startsWith("."));
  const fresh = added.map((file) => ({
    file, name: file.webkitRelativePath || file.name, size: file.size, phase: "checking", message: "Checking…",
    controller: new AbortController(),
  }));
  entries.push(...fresh);
  fresh.forEach(render);
  for (const entry of fresh) await check(entry); // one at a time: hashing is the CPU's, not the network's
  pump();
}

async function check(entry) {
  try {
    await inspect(entry);
  } catch (error) {
    entry.phase = "error";
    entry.message = `Could not read this file: ${error.message}`;
    render(entry);
  }
}

async function inspect(entry) {
  if (entry.phase !== "checking") return;
  const head = new Uint8Array(await entry.file.slice(0, 4096).arrayBuffer());
  const type = entry.size ? contentType(head) : null;
  if (!type) {
    entry.phase = "not-image";
    entry.message = entry.size
      ? "Not sent: its content is not a photo (JPEG, PNG, GIF, WebP, TIFF, HEIC/HEIF or AVIF), whatever its name says."
      : "Not sent: the file is empty.";
    return render(entry);
  }
  entry.sha256 = await sha256Hex(entry.file, (hashed) => {
    if (entry.phase !== "checking") return;
    entry.message = `Checking… ${Math.floor((100 * hashed) / Math.max(entry.size, 1))}%`;
    render(entry);
  });
  if (entry.phase !== "checking") return; // cancelled meanwhile
  const fileName = entry.file.name;
  entry.request = { filename: fileName, content_type: type, size: entry.size, sha256: entry.sha256 };
  entry.idempotencyKey = await sha256OfText(`${entry.sha256}:${fileName}`); // as `photopipe upload` derives it
  const twin = entries.find(
    (other) => other !== entry && other.file && other.sha256 === entry.sha256 && !["cancelled", "error"].includes(other.phase),
  );
  if (twin) {
    entry.phase = "skipped";
    entry.message = `Not sent again: the same photo as “${twin.name}”.`;
    return render(entry);
  }
  let existing = null;
  try {
    existing = await api.existing(entry.sha256);
  } catch {
    // not known whether it is in: it is sent, and the API answers already_uploaded if it was
  }
  if (entry.phase !== "checking") return;
  if (existing && ["READY", "DUPLICATE", "PROCESSING"].includes(existing.status)) {
    entry.phase = "skipped";
    entry.media = existing;
    entry.mediaId = existing.media_id;
    entry.message = "(already in your library: not sent again)";
    if (existing.status === "PROCESSING") follow(entry);
    return render(entry);
  }
  const interrupted = remembered()[entry.idempotencyKey];
  entry.phase = "ready";
  entry.message = interrupted?.phase === "sending" ? "Ready to go on where it stopped" : "Ready to send";
  render(entry);
  showInterrupted();
}

// --- sending --------------------------------------------------------------------------------------------------
function pump() {
  for (const entry of entries) {
    if (sending >= SENDING_AT_ONCE) return;
    if (entry.phase !== "waiting") continue;
    sending += 1;
    upload(entry).finally(() => {
      sending -= 1;
      pump();
    });
  }
}

async function upload(entry) {
  entry.phase = "sending";
  entry.sent = 0;
  entry.message = "Sending…";
  remember(entry);
  render(entry);
  let lastRender = 0;
  const onBytes = (sent) => {
    entry.sent = Math.min(sent, entry.size);
    entry.message = `Sending… ${Math.floor((100 * entry.sent) / Math.max(entry.size, 1))}%`;
    if (Date.now() - lastRender > 100 || entry.sent === entry.size) {
      lastRender = Date.now();
      render(entry);
    }
  };
  try {
    const grant = await api.createUpload(entry.request, entry.idempotencyKey, entry.controller.signal);
    entry.mediaId = grant.media_id;
    remember(entry);
    await send(api, entry, grant, onBytes, entry.controller.signal);
    sent(entry);
  } catch (error) {
    if (error instanceof ApiError && error.code === "already_uploaded" && error.mediaId) {
      entry.mediaId = error.mediaId; // its bytes arrived before (an answer lost, or a reload): not sent again
      entry.sent = entry.size;
      sent(entry);
    } else if (error instanceof Cancelled || entry.controller.signal.aborted) {
      entry.phase = "cancelled";
      entry.message = "Cancelled.";
    } else {
      entry.phase = "error";
      entry.message = `Not sent: ${error.message}`;
    }
    remember(entry);
    render(entry);
  }
}

function sent(entry) {
  entry.phase = "processing";
  entry.message = "Sent; processing…";
  remember(entry);
  render(entry);
  follow(entry);
}

function cancel(entry) {
  entry.controller.abort();
  if (["checking", "ready", "waiting"].includes(entry.phase)) {
    entry.phase = "cancelled";
    entry.message = "Cancelled.";
    render(entry);
  }
}

async function retry(entry) {
  if (entry.media?.status === "FAILED") {
    try {
      await api.retry(entry.mediaId);
      entry.phase = "processing";
      entry.media = null;
      entry.message = "Running again…";
      render(entry);
      follow(entry);
    } catch (error) {
      entry.message = `Could not run it again: ${error.message}`;
      render(entry);
    }
    return;
  }
  entry.controller = new AbortController();
  if (!entry.request) {
    entry.phase = "checking"; // cancelled (or unreadable) before it was checked: checked first
    entry.message = "Checking…";
    render(entry);
    await check(entry);
    if (entry.phase !== "ready") return;
  }
  entry.phase = "waiting";
  entry.message = "Waiting to send";
  render(entry);
  pump();
}

// --- following photos to their final status --------------------------------------------------------------------
// A few questions at a time, however many photos are followed (after a reload, up to 500).
const ASKING_AT_ONCE = 6;
let asking = 0;
const askQueue = [];

async function ask(mediaId) {
  while (asking >= ASKING_AT_ONCE) await new Promise((resolve) => askQueue.push(resolve));
  asking += 1;
  try {
    return await api.media(mediaId);
  } finally {
    asking -= 1;
    askQueue.shift()?.();
  }
}

async function follow(entry) {
  for (let round = 0; ; round++) {
    await sleep(Math.min(1000 + 500 * round, 5000));
    if (!entry.row?.isConnected) return; // cleared from the list
    let media;
    try {
      media = await ask(entry.mediaId);
    } catch (error) {
      if (error.status >= 400 && error.status < 500) {
        entry.phase = "error";
        entry.message =
          error.status === 404 ? "This photo is no longer in your library." : `Cannot follow it: ${error.message}`;
        remember(entry);
        return render(entry);
      }
      await sleep(backoff(Math.min(round, 4)));
      continue;
    }
    entry.media = media;
    if (TERMINAL.has(media.status)) {
      entry.phase = "done";
      entry.message = null;
      remember(entry);
      render(entry);
      if (media.status === "READY") refreshGallerySoon();
      return;
    }
    render(entry);
  }
}

// After a reload: rows for what was sent (followed again), and a list of what was still being sent.
function restore() {
  for (const [idempotencyKey, kept] of Object.entries(remembered())) {
    if (kept.phase === "sending" || kept.phase === "ready") continue;
    const entry = {
      name: kept.name, size: kept.size, idempotencyKey, mediaId: kept.mediaId, phase: kept.phase,
      message: kept.message, controller: new AbortController(),
    };
    const followed = entry.mediaId && ["processing", "done", "skipped"].includes(entry.phase);
    if (!followed && entry.phase !== "error" && entry.phase !== "cancelled") continue;
    entries.push(entry);
    render(entry);
    if (followed) follow(entry); // to its final status, or once for its thumbnail's fresh URL
  }
  showInterrupted();
}

function showInterrupted() {
  const open = new Set(entries.filter((e) => e.file).map((e) => e.idempotencyKey));
  const waiting = Object.entries(remembered()).filter(([key, kept]) => kept.phase === "sending" && !open.has(key));
  $("interrupted").hidden = waiting.length === 0;
  $("interrupted-list").replaceChildren(
    ...waiting.map(([, kept]) => element("li", { textContent: `${kept.name} (${size(kept.size)})` })),
  );
}

// --- the library ----------------------------------------------------------------------------------------------
let galleryToken = null;
let galleryTimer = null;

// Many photos finish within seconds of each other: the library is asked once for all of them.
function refreshGallerySoon() {
  clearTimeout(galleryTimer);
  galleryTimer = setTimeout(() => refreshGallery(), 2000);
}

let galleryAlbum = null; // the album whose photos the library shows, when it shows albums
// Each read of the library is numbered: an answer that arrives after a later read was asked for (the view was
// changed, or drawn again, meanwhile) is dropped, and does not replace what the later read shows.
let galleryRead = 0;

async function refreshGallery(more = false) {
  const read = ++galleryRead;
  const status = $("gallery-status").value;
  const albums = status === "ALBUMS";
  if (!albums) galleryAlbum = null;
  if (!more) galleryToken = null;
  $("all-albums").hidden = !galleryAlbum;
  $("album-title").hidden = !galleryAlbum;
  let page;
  try {
    if (albums && !galleryAlbum) page = await api.albums();
    else if (albums) page = await api.album(galleryAlbum, galleryToken);
    else page = await api.list(status, galleryToken);
  } catch (error) {
    if (read === galleryRead) {
      $("gallery").replaceChildren(element("li", { className: "error", textContent: error.message }));
    }
    return;
  }
  if (read !== galleryRead) return;
  if (page.album) $("album-title").textContent = `${page.album.title} · ${photos(page.album.count)}`;
  galleryToken = page.next_token ?? null;
  const tiles = albums && !galleryAlbum ? page.items.map(albumTile) : page.items.map(mediaTile);
  if (more) $("gallery").append(...tiles);
  else $("gallery").replaceChildren(...(tiles.length ? tiles : [element("li", { textContent: "Nothing here yet." })]));
  $("more").hidden = !galleryToken;
}

function photos(count) {
  return `${count} photo${count === 1 ? "" : "s"}`;
}

function mediaTile(media) {
  const variant = smallestVariant(media);
  const name = media.source?.filename ?? media.media_id;
  const open = element("button", { type: "button" });
  open.setAttribute("aria-label", `Open ${name}`);
  if (variant) open.append(element("img", { src: variant.url, alt: "", loading: "lazy" }));
  open.append(element("span", { textContent: name }));
  if (media.status !== "READY") open.append(element("span", { textContent: describe(media) ?? "Duplicate" }));
  open.addEventListener("click", () => openMedia(media.media_id));
  return element("li", {}, open);
}

// Each cover photo's smallest variant, asked for once: the library is drawn again as uploads finish, and an owner
// with many albums would otherwise ask for every cover each time. A failed read is asked again next time.
const covers = new Map();
function coverUrl(mediaId) {
  if (!covers.has(mediaId)) {
    const url = api.media(mediaId).then(
      (media) => smallestVariant(media)?.url ?? null,
      () => {
        covers.delete(mediaId);
        return null;
      },
    );
    covers.set(mediaId, url);
  }
  return covers.get(mediaId);
}

// An album: its title (day, and place), how many photos, and when; its cover is its first photo's smallest variant.
function albumTile(album) {
  const open = element("button", { type: "button", className: "album" });
  open.setAttribute("aria-label", `Open album ${album.title}`);
  const cover = element("img", { alt: "", loading: "lazy" });
  cover.hidden = true;
  coverUrl(album.cover).then((url) => {
    if (url) Object.assign(cover, { src: url, hidden: false });
  });
  open.append(cover, element("span", { className: "album-title", textContent: album.title }));
  open.append(element("span", { textContent: photos(album.count) }));
  open.addEventListener("click", () => {
    galleryAlbum = album.album_id;
    refreshGallery();
  });
  return element("li", {}, open);
}

async function openMedia(mediaId) {
  const viewer = $("viewer");
  let media;
  try {
    media = await api.media(mediaId);
  } catch (error) {
    $("viewer-title").textContent = mediaId;
    $("viewer-facts").textContent = error.message;
    $("viewer-variants").replaceChildren();
    return viewer.showModal();
  }
  $("viewer-title").textContent = media.source?.filename ?? media.media_id;
  const facts = [media.status, media.width && `${media.width}×${media.height}`, media.taken_at && `taken ${media.taken_at}`];
  $("viewer-facts").textContent = facts.filter(Boolean).join(" · ");
  if (media.status === "DUPLICATE") $("viewer-facts").append(" · same bytes as ", mediaLink(media.duplicate_of));
  const variants = Object.entries(media.variants ?? {}).sort((a, b) => a[1].width - b[1].width);
  $("viewer-variants").replaceChildren(
    ...variants.map(([name, variant]) =>
      element(
        "li",
        {},
        element("a", { href: variant.url, target: "_blank", rel: "noopener", textContent: `${name}: ${variant.width}×${variant.height}, ${size(variant.bytes)}` }),
        name === variants[0][0] ? element("img", { src: variant.url, alt: `${name} variant` }) : null,
      ),
    ),
  );
  if (!viewer.open) viewer.showModal();
}

// --- the key, and the page's controls ---------------------------------------------------------------------------
async function useKey(key) {
  const candidate = new Api(base, key);
  try {
    const me = await candidate.me();
    api = candidate;
    owner = me.owner;
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("key-error").textContent =
      error.status === 403 ? "This key is not one of this stack's keys (or it was revoked)." : error.message;
    $("key-form").hidden = false;
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key-form").hidden = true;
  $("library").hidden = false;
  $("forget").hidden = false;
  $("who").textContent = `${owner}'s library`;
  restore();
  updateTotals();
  refreshGallery();
}

// Every file of a dropped folder, through the entries API (a drop gives no File list for folders).
async function droppedFiles(items) {
  const files = [];
  const walk = async (item, path) => {
    if (item.isFile) {
      const file = await new Promise((resolve, reject) => item.file(resolve, reject));
      files.push(path ? new File([file], file.name, { type: file.type, lastModified: file.lastModified }) : file);
      if (path) Object.defineProperty(files.at(-1), "webkitRelativePath", { value: `${path}${file.name}` });
    } else if (item.isDirectory) {
      const reader = item.createReader();
      for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
        for (const child of batch) await walk(child, `${path}${item.name}/`);
      }
    }
  };
  for (const item of items) await walk(item, "");
  return files;
}

const readEntries = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("key-error").textContent = "";
    useKey($("key").value.trim());
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    location.reload();
  });
  const drop = $("drop");
  drop.addEventListener("click", () => $("files").click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("files").click();
    }
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const items = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
    add(items.length ? await droppedFiles(items) : event.dataTransfer.files);
  });
  for (const id of ["files", "folder"]) {
    $(id).addEventListener("change", (event) => {
      add(event.target.files);
      event.target.value = "";
    });
  }
  $("start").addEventListener("click", () => {
    for (const entry of entries) {
      if (entry.phase === "ready") {
        entry.phase = "waiting";
        entry.message = "Waiting to send";
        render(entry);
      }
    }
    pump();
  });
  $("cancel-all").addEventListener("click", () => entries.forEach((entry) => cancel(entry)));
  $("clear").addEventListener("click", () => {
    for (const entry of entries.filter((e) => CLEARABLE.includes(e.phase))) {
      entry.row.remove();
      entries.splice(entries.indexOf(entry), 1);
      forget(entry);
    }
    updateTotals();
  });
  $("gallery-status").addEventListener("change", () => refreshGallery());
  $("all-albums").addEventListener("click", () => {
    galleryAlbum = null;
    refreshGallery();
  });
  $("more").addEventListener("click", () => refreshGallery(true));
}

wire();
const key = sessionStorage.getItem(KEY_STORAGE);
if (key) useKey(key);
else $("key-form").hidden = false;
