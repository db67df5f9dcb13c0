// Sending one file's bytes to S3 with the URLs the API grants: one PUT, or the parts of a multipart upload (only
// those S3 does not hold yet: how an upload resumes after a reload). Progress by bytes; retries with backoff on
// network errors and 5xx; an expired URL (403) gets fresh URLs by asking the API again with the same
// Idempotency-Key.

import { backoff, sleep } from "./api.js";

export class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}

// One PUT with upload progress (fetch reports none): resolves to the HTTP status, rejects on a network error.
function put(url, headers, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Cancelled());
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase() !== "content-length") request.setRequestHeader(name, value); // the browser sets it
    }
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => resolve(request.status);
    request.onerror = () => reject(new Error("the connection to storage failed"));
    request.onabort = () => reject(new Cancelled());
    signal.addEventListener("abort", () => request.abort(), { once: true });
    request.send(body);
  });
}

const ATTEMPTS = 6;

// PUT one body, again after a network error or 5xx, and with a fresh URL after a 403 (expired).
async function putRetrying(target, body, onProgress, signal, refresh) {
  for (let attempt = 0; ; attempt++) {
    let status;
    try {
      status = await put(target.url, target.headers, body, onProgress, signal);
    } catch (error) {
      if (error instanceof Cancelled || attempt + 1 >= ATTEMPTS) throw error;
      onProgress(0);
      await sleep(backoff(attempt));
      // A refusal without CORS headers looks like a network error to a page: from the second, fresh URLs.
      if (attempt >= 1) target = await refresh();
      if (target.uploaded) return; // S3 has it: the answer was lost, not the bytes
      continue;
    }
    if (status >= 200 && status < 300) return;
    onProgress(0);
    if (attempt + 1 >= ATTEMPTS) throw new Error(`storage refused the bytes (HTTP ${status})`);
    if (status === 403) target = await refresh(); // the signed URL expired: the same upload, fresh URLs
    else if (status < 500) throw new Error(`storage refused the bytes (HTTP ${status})`);
    if (target.uploaded) return;
    else await sleep(backoff(attempt));
  }
}

// Send entry.file as the grant says; onBytes(total sent) as it goes. Returns the media id.
export async function send(api, entry, grant, onBytes, signal) {
  const ask = () => api.createUpload(entry.request, entry.idempotencyKey, signal);
  if (grant.upload.method === "PUT") {
    const refresh = async () => (await ask()).upload;
    await putRetrying(grant.upload, entry.file, onBytes, signal, refresh);
    onBytes(entry.file.size);
    return grant.media_id;
  }
  // Multipart: the parts S3 already holds count as sent; the others go one after another.
  const size = grant.upload.part_size;
  let done = grant.upload.parts.filter((part) => part.uploaded).reduce((sum, part) => sum + part.size, 0);
  onBytes(done);
  for (const part of grant.upload.parts) {
    if (part.uploaded) continue;
    const start = (part.part_number - 1) * size;
    const body = entry.file.slice(start, start + part.size);
    const refresh = async () => (await ask()).upload.parts.find((p) => p.part_number === part.part_number);
    await putRetrying(part, body, (sent) => onBytes(done + sent), signal, refresh);
    done += part.size;
    onBytes(done);
  }
  await api.complete(grant.upload.complete_url);
  return grant.media_id;
}
