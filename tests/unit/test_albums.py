"""Albums by day and place (photopipe_core.albums), from photo facts as Validate and Resize store them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from photopipe_core.albums import ALBUM_ID, AlbumPhoto, albums, distance_metres, parse_offset

ROOT = Path(__file__).resolve().parents[2]
UPLOADED = "2026-11-30T09:00:00+00:00"
PARIS = (48.8584, 2.2945)  # the Eiffel Tower
PARIS_5KM_EAST = (48.8584, 2.2945 + 5000 / (111_320 * 0.6580))  # ≈ 5 km east, the same latitude
NEW_YORK = (40.6892, -74.0445)


def photo(media_id: str, taken: str | None, where: tuple[float, float] | None = None, offset: str | None = None,
          uploaded: str = UPLOADED) -> AlbumPhoto:  # fmt: skip
    lat, lon = where if where else (None, None)
    return AlbumPhoto(media_id, uploaded, taken, offset, lat, lon)


def grouped(photos: list[AlbumPhoto]) -> dict[str, list[str]]:
    return {album.album_id: [p.media_id for p in album.photos] for album in albums(photos)}


def test_photos_of_two_days_at_one_place_are_two_albums_most_recent_first() -> None:
    found = albums(
        [
            photo("a", "2026-07-14T10:00:00", PARIS),
            photo("b", "2026-07-14T18:30:00", PARIS),
            photo("c", "2026-07-15T09:00:00", PARIS),
        ]
    )
    assert [(album.album_id, [p.media_id for p in album.photos]) for album in found] == [
        ("2026-07-15", ["c"]),
        ("2026-07-14", ["a", "b"]),
    ]
    assert found[1].title == "Tue 14 Jul 2026 · 48.858° N, 2.295° E"


def test_two_places_five_kilometres_apart_on_one_day_are_two_albums_in_the_order_visited() -> None:
    assert 4900 < distance_metres(PARIS, PARIS_5KM_EAST) < 5100
    assert grouped(
        [
            photo("morning-1", "2026-07-14T09:00:00", PARIS),
            photo("morning-2", "2026-07-14T09:40:00", (PARIS[0] + 0.002, PARIS[1])),  # 220 m north
            photo("afternoon", "2026-07-14T15:00:00", PARIS_5KM_EAST),
        ]
    ) == {"2026-07-14": ["morning-1", "morning-2"], "2026-07-14-2": ["afternoon"]}


def test_a_walk_of_short_steps_stays_one_album() -> None:
    step = 400 / 111_320  # 400 m north each time: 2 km in all
    walk = [photo(f"w{n}", f"2026-07-14T1{n}:00:00", (PARIS[0] + n * step, PARIS[1])) for n in range(6)]
    assert grouped(walk) == {"2026-07-14": [f"w{n}" for n in range(6)]}


def test_a_trip_across_time_zones_sorts_by_when_the_photos_were_taken_and_keeps_local_days() -> None:
    # Paris at 23:10 (+02:00) is 21:10 UTC; New York at 18:30 (-04:00) the same evening is 22:30 UTC: later,
    # though its clock reads earlier. Both are 14 July where they were taken.
    found = grouped(
        [
            photo("ny-evening", "2026-07-14T18:30:00", NEW_YORK, "-04:00"),
            photo("paris-night", "2026-07-14T23:10:00", PARIS, "+02:00"),
            photo("paris-morning", "2026-07-14T08:00:00", PARIS, "+02:00"),
            photo("ny-next-morning", "2026-07-15T07:00:00", NEW_YORK, "-04:00"),
        ]
    )
    assert found == {
        "2026-07-15": ["ny-next-morning"],
        "2026-07-14": ["paris-morning", "paris-night"],
        "2026-07-14-2": ["ny-evening"],
    }


def test_photos_without_gps_join_the_place_taken_closest_in_time_and_a_day_without_gps_is_one_album() -> None:
    assert grouped(
        [
            photo("paris", "2026-07-14T10:00:00", PARIS),
            photo("no-gps-soon-after", "2026-07-14T10:20:00"),
            photo("east", "2026-07-14T16:00:00", PARIS_5KM_EAST),
            photo("no-gps-evening", "2026-07-14T17:00:00"),
            photo("other-day-1", "2026-07-20T10:00:00"),
            photo("other-day-2", "2026-07-20T12:00:00"),
        ]
    ) == {
        "2026-07-20": ["other-day-1", "other-day-2"],
        "2026-07-14": ["paris", "no-gps-soon-after"],
        "2026-07-14-2": ["east", "no-gps-evening"],
    }


def test_photos_without_a_date_go_by_the_day_they_were_uploaded() -> None:
    found = albums(
        [
            photo("scan-1", None, uploaded="2026-11-30T08:00:00+00:00"),
            photo("scan-2", None, PARIS, uploaded="2026-11-30T09:00:00Z"),
            photo("scan-3", None, uploaded="2026-11-29T23:59:00+00:00"),
            photo("dated", "2026-11-30T07:00:00"),
        ]
    )
    assert [(a.album_id, a.kind, [p.media_id for p in a.photos]) for a in found] == [
        ("2026-11-30", "day", ["dated"]),
        ("uploaded-2026-11-30", "uploaded", ["scan-1", "scan-2"]),
        ("uploaded-2026-11-29", "uploaded", ["scan-3"]),
    ]
    assert found[1].title == "Uploaded Mon 30 Nov 2026"


def test_offsets_are_read_as_exif_writes_them_and_nonsense_counts_as_none() -> None:
    assert parse_offset("+05:30") == timedelta(hours=5, minutes=30)
    assert parse_offset("-0400") == timedelta(hours=-4)
    for nonsense in (None, "", "Z", "+25:00", "+01:75", "garbage"):
        assert parse_offset(nonsense) == timedelta(0)
    assert photo("x", "2026-07-14T23:10:00", offset="+02:00").instant == datetime(2026, 7, 14, 21, 10, tzinfo=UTC)


def test_the_same_photos_give_the_same_albums_in_any_order() -> None:
    photos = [
        photo(f"p{n}", f"2026-07-{14 + n % 3}T1{n % 10}:00:00", PARIS if n % 2 else PARIS_5KM_EAST) for n in range(30)
    ]
    assert grouped(photos) == grouped(list(reversed(photos)))


def test_the_api_documents_exactly_the_album_ids_the_code_gives() -> None:
    document = yaml.safe_load((ROOT / "functions/api/openapi.yaml").read_text())
    [album_id] = [p for p in document["paths"]["/v1/albums/{album_id}"]["get"]["parameters"] if p["in"] == "path"]
    assert album_id["schema"]["pattern"] == f"^{ALBUM_ID.pattern}$"
    some = [photo("a", "2026-07-14T10:00:00", PARIS), photo("b", "2026-07-14T12:00:00", PARIS_5KM_EAST)]
    ids = [album.album_id for album in albums([*some, photo("c", None)])]
    assert ids == ["uploaded-2026-11-30", "2026-07-14-2", "2026-07-14"] and all(map(ALBUM_ID.fullmatch, ids))
