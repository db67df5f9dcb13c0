"""Albums through the API in-process: photos run through the pipeline are grouped by the day and place their EXIF
says, per owner, and an album's media come in pages in the order they were taken."""

from __future__ import annotations

from chalice.test import Client
from PIL import Image

from photopipe import samples
from tests.functional.conftest import ApiKeys, FakeContext, KeyedClient, load_function
from tests.functional.pipeline import put_original, run_pipeline


def dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees, rest = int(value), (abs(value) - int(value)) * 60
    return float(degrees), float(int(rest)), round((rest - int(rest)) * 60, 4)


def exif_photo(seed: int, taken: str | None, where: tuple[float, float] | None, offset: str | None = None) -> bytes:
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if offset:
        exif.get_ifd(0x8769)[0x9011] = offset
    if where:
        lat, lon = where
        exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    return samples.jpeg_bytes(samples.photo(320, 240, seed=seed), exif=exif)


def test_albums_group_the_pipelines_photos_by_day_and_place(client: KeyedClient, context: FakeContext) -> None:
    photos = {
        "a1": ("2025:07:14 09:00:00", (48.8584, 2.2945), "+02:00"),  # Paris, morning
        "a2": ("2025:07:14 09:30:00", (48.8600, 2.2960), "+02:00"),  # 200 m away
        "a3": ("2025:07:14 15:00:00", (48.8584, 2.3627), "+02:00"),  # 5 km east, afternoon
        "a4": ("2025:07:15 10:00:00", (48.8584, 2.2945), "+02:00"),  # the next day
        "a5": (None, None, None),  # a scan: no EXIF date
    }
    for n, (name, (taken, where, offset)) in enumerate(photos.items()):
        media = put_original(f"drop/{name}.jpg", exif_photo(80 + n, taken, where, offset))
        run_pipeline(media, context, execution=f"arn:exec:{name}")

    listed = client.http.get("/v1/albums")

    assert listed.status_code == 200, listed.json_body
    found = {a["album_id"]: a for a in listed.json_body["items"]}
    order = [a["album_id"] for a in listed.json_body["items"]]  # most recent first: the scan's upload day, then July
    assert order[0].startswith("uploaded-") and order[1:] == ["2025-07-15", "2025-07-14-2", "2025-07-14"]
    morning = found["2025-07-14"]
    assert (morning["kind"], morning["count"], morning["cover"], morning["day"]) == ("place", 2, "A1", "2025-07-14")
    assert morning["start"] == "2025-07-14T07:00:00Z" and morning["end"] == "2025-07-14T07:30:00Z"
    assert abs(morning["center"]["latitude"] - 48.8592) < 0.001
    assert morning["title"] == "Mon 14 Jul 2025 · 48.859° N, 2.295° E"
    [scans] = [a for a in found.values() if a["kind"] == "uploaded"]
    assert scans["count"] == 1 and scans["cover"] == "A5" and "center" not in scans

    first = client.http.get("/v1/albums/2025-07-14?limit=1").json_body
    assert first["album"] == morning and [m["media_id"] for m in first["items"]] == ["A1"]
    assert first["items"][0]["variants"]["thumb"]["url"].startswith("http://localhost:4566/")
    rest = client.http.get(f"/v1/albums/2025-07-14?limit=1&next_token={first['next_token']}").json_body
    assert [m["media_id"] for m in rest["items"]] == ["A2"] and rest["next_token"] is None

    wrong_album = client.http.get(f"/v1/albums/2025-07-15?next_token={first['next_token']}")
    assert (wrong_album.status_code, wrong_album.json_body["error"]["code"]) == (400, "invalid_next_token")
    for missing in ("/v1/albums/2024-01-01", "/v1/albums/not-an-album", "/v1/albums/2025-07-14-9"):
        assert client.http.get(missing).status_code == 404
    assert client.http.get("/v1/albums?x=1").json_body["error"]["code"] == "unknown_query"
    assert client.http.get("/v1/albums/2025-07-14?limit=0").json_body["error"]["code"] == "invalid_limit"


def test_another_owners_albums_are_not_seen(client: KeyedClient, api_keys: ApiKeys, context: FakeContext) -> None:
    media = put_original("drop/b1.jpg", exif_photo(90, "2025:08:01 12:00:00", (40.0, -3.7)))
    run_pipeline(media, context, execution="arn:exec:b1")
    assert [a["album_id"] for a in client.http.get("/v1/albums").json_body["items"]] == ["2025-08-01"]
    app = load_function("api", "app")
    with Client(app.app) as other_client:
        other = KeyedClient(other_client, api_keys.make("someone-else"))
        assert other.http.get("/v1/albums").json_body == {"items": []}
        assert other.http.get("/v1/albums/2025-08-01").status_code == 404
