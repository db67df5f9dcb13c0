"""The demo: a varied, seeded set of photos plus what a real camera roll brings (a duplicate, broken files), sent half
through the API (the upload CLI's path) and half into the drop folder (the way `aws s3 cp` would), then a contact
sheet of what came out."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from photopipe import samples

API = "api"
DROP = "drop"


@dataclass(frozen=True)
class Sample:
    name: str
    body: bytes
    content_type: str
    via: str
    expect: str
    reason: str | None = None
    same_as: str | None = None  # a byte-identical copy of another sample: one of the two ends DUPLICATE


@cache
def sample_set() -> tuple[Sample, ...]:
    """The demo's photos (made once per process: the large ones take seconds to draw)."""
    landscape = samples.jpeg_bytes(samples.photo(4000, 3000, seed=11))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    exif[0x010F], exif[0x0110] = "PhotoCam", "PC-1"
    sideways = samples.jpeg_bytes(samples.photo(3200, 2400, seed=12), exif=exif)
    alpha = samples.photo(1600, 1600, seed=13).convert("RGBA")
    alpha.putalpha(Image.radial_gradient("L").resize(alpha.size).point(lambda v: 255 - v))
    png = io.BytesIO()
    alpha.save(png, "PNG")
    panorama = samples.jpeg_bytes(samples.photo(6000, 1000, seed=14))
    small = samples.jpeg_bytes(samples.photo(640, 480, seed=15))
    broken = samples.jpeg_bytes(samples.photo(2000, 1500, seed=16))
    text = b"these are not the pixels you are looking for\n"
    return (
        Sample("landscape.jpg", landscape, "image/jpeg", API, "READY"),
        Sample("alpha.png", png.getvalue(), "image/png", API, "READY"),
        Sample("small.jpg", small, "image/jpeg", API, "READY"),
        Sample("truncated.jpg", broken[: len(broken) // 3], "image/jpeg", API, "REJECTED", "corrupt"),
        Sample("portrait-exif-6.jpg", sideways, "image/jpeg", DROP, "READY"),
        Sample("panorama.jpg", panorama, "image/jpeg", DROP, "READY"),
        Sample("landscape-copy.jpg", landscape, "image/jpeg", DROP, "DUPLICATE", same_as="landscape.jpg"),
        Sample("notes.txt.jpg", text, "image/jpeg", DROP, "REJECTED", "unsupported_type"),
    )


def write_samples(folder: Path) -> dict[str, Path]:
    """The sample files under folder/api/ and folder/drop/; returns each sample's path by name."""
    paths = {}
    for sample in sample_set():
        path = folder / sample.via / sample.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample.body)
        paths[sample.name] = path
    return paths


def unexpected(outcomes: dict[str, dict[str, Any] | None]) -> list[str]:
    """What did not end as the sample set says it should (by sample name → the media as the API shows it)."""
    problems = []
    copied = {sample.same_as for sample in sample_set() if sample.same_as}
    this_run = {media.get("media_id") for media in outcomes.values() if media}
    for sample in sample_set():
        media = outcomes.get(sample.name)
        status = media["status"] if media else "(not seen)"
        earlier = media.get("duplicate_of") if media and status == "DUPLICATE" else None
        if sample.expect == "READY" and earlier and earlier not in this_run:
            continue  # the library (kept across restarts) has it from an earlier demo
        if sample.name in copied:
            continue  # judged together with the copy that names it
        if sample.same_as:  # either copy may be processed first; exactly one of them is the duplicate
            original = outcomes.get(sample.same_as)
            pair = {status, original["status"] if original else "(not seen)"}
            if pair != {"READY", "DUPLICATE"}:
                problems.append(f"{sample.name} and {sample.same_as}: {sorted(pair)}, expected READY and DUPLICATE")
        elif status != sample.expect or (sample.reason and media and media.get("reason") != sample.reason):
            got = f"{status} ({media.get('reason')})" if media and media.get("reason") else status
            problems.append(f"{sample.name}: {got}, expected {sample.expect} {sample.reason or ''}".strip())
    return problems


def contact_sheet(folder: Path, outcomes: dict[str, dict[str, Any] | None], title: str) -> Path:
    """An HTML page of every sample: thumbnails (downloaded through their presigned URLs) linking to the medium
    variant, and what happened to each photo. Self-contained: the images sit next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    cards = []
    for name, media in outcomes.items():
        status = media["status"] if media else "(not seen)"
        image = ""
        if media and media.get("variants"):
            stem = Path(name).stem
            for variant in ("thumb", "medium"):
                response = requests.get(media["variants"][variant]["url"], timeout=30)
                response.raise_for_status()
                (folder / f"{stem}.{variant}.webp").write_bytes(response.content)
            thumb = media["variants"]["thumb"]
            image = (
                f'<a href="{html.escape(stem)}.medium.webp"><img src="{html.escape(stem)}.thumb.webp" '
                f'width="{thumb["width"]}" height="{thumb["height"]}" alt="{html.escape(name)}"></a>'
            )
        detail = ""
        if media:
            detail = media.get("reason_detail") or media.get("duplicate_of") or media.get("error") or ""
            if media.get("width"):
                detail = f"{media['width']}×{media['height']} {detail}".strip()
        cards.append(
            f'<figure class="{status.lower()}">{image or "<div class=none>no image</div>"}'
            f"<figcaption><b>{html.escape(name)}</b><br>{html.escape(status)}"
            f"{' · ' + html.escape(media['reason']) if media and media.get('reason') else ''}"
            f"<br><small>{html.escape(detail)}</small>"
            f"<br><small>{html.escape(media['media_id']) if media else ''}</small></figcaption></figure>"
        )
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:14px system-ui;margin:2em;background:#fafafa}"
        "main{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;padding:.6em;background:#fff;width:270px;"
        "border:1px solid #ddd;border-radius:6px}figure img{display:block;margin:auto;"
        "background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}"
        ".rejected,.failed{border-color:#d55}.duplicate{border-color:#c90}"
        ".none{height:120px;display:grid;place-items:center;color:#999}</style>"
        f"<h1>{html.escape(title)}</h1><main>{''.join(cards)}</main>\n",
        encoding="utf-8",
    )
    return page
