// The photopipe API as the page uses it: every call with the owner's key, errors as the API words them, and
// retries with backoff for what a retry can fix (no network, 429 with Retry-After, 5xx).

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Exponential backoff with jitter: about 1, 2, 4, 8 … seconds, at most 30.
export const backoff = (attempt) => Math.min(30_000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = body?.error ?? {};
    super(error.message || `the API answered ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.requestId = error.request_id;
    this.retryAfter = retryAfter;
    this.mediaId = error.media_id; // with already_uploaded: the media these bytes became
  }
}

export class Api {
  // base: the API's URL ending in "/" (where the page itself is served).
  constructor(base, key) {
    this.base = base;
    this.key = key;
  }

  url(path) {
    return new URL(path.replace(/^\//, ""), this.base).href;
  }

  async request(method, path, { body, headers = {}, retries = 5, signal } = {}) {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(this.url(path), {
          method,
          signal,
          headers: { "x-api-key": this.key, ...(body ? { "content-type": "application/json" } : {}), ...headers },
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        if (attempt >= retries) throw new ApiError(0, { error: { message: `the API could not be reached (${error.message})` } });
        await sleep(backoff(attempt));
        continue;
      }
      const retryable = response.status === 429 || response.status === 502 || response.status === 503 || response.status === 504;
      if (retryable && attempt < retries) {
        const seconds = Number(response.headers.get("retry-after"));
        await sleep(seconds > 0 ? seconds * 1000 : backoff(attempt));
        continue;
      }
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new ApiError(response.status, data, response.headers.get("retry-after"));
      return data;
    }
  }

  // The owner the key belongs to (403 ApiError for a key the stack does not know).
  me() {
    return this.request("GET", "/v1/me", { retries: 1 });
  }

  // The owner's media with these bytes, or null.
  async existing(sha256) {
    try {
      return await this.request("GET", `/v1/media?sha256=${sha256}`);
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
  }

  createUpload(body, idempotencyKey, signal) {
    return this.request("POST", "/v1/uploads", { body, headers: { "Idempotency-Key": idempotencyKey }, signal });
  }

  complete(path) {
    return this.request("POST", path);
  }

  media(mediaId) {
    return this.request("GET", `/v1/media/${encodeURIComponent(mediaId)}`);
  }

  retry(mediaId) {
    return this.request("POST", `/v1/media/${encodeURIComponent(mediaId)}/retry`);
  }

  albums() {
    return this.request("GET", "/v1/albums");
  }

  album(albumId, nextToken, limit = 24) {
    const token = nextToken ? `&next_token=${encodeURIComponent(nextToken)}` : "";
    return this.request("GET", `/v1/albums/${encodeURIComponent(albumId)}?limit=${limit}${token}`);
  }

  list(status, nextToken, limit = 24) {
    const token = nextToken ? `&next_token=${encodeURIComponent(nextToken)}` : "";
    return this.request("GET", `/v1/media?status=${status}&limit=${limit}${token}`);
  }
}
