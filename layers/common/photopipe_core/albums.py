"""Albums: an owner's READY photos grouped as a person would, by the day and the place they were taken.

- **The day** is the calendar date where the photo was taken: EXIF ``DateTimeOriginal`` is the camera's local time.
  Its offset (``OffsetTimeOriginal``, or the difference to the GPS clock's UTC time) places it in time, so photos
  of a trip across time zones sort in the order they were taken; without any offset the camera's local time is
  taken as it is (it sorts as if it were UTC).
- **The place**: photos of one day taken within ``NEAR_METRES`` of another of that day's photos (a chain: a walk
  stays one album) form one album; places farther apart are albums of their own. A photo of that day without GPS
  joins the place whose photos were taken closest in time; a day with no GPS at all is one album.
- **No date**: photos without a date (EXIF ``DateTimeOriginal``, else ``DateTime``) go by the day they were uploaded
  (UTC).

An album's id names its day and, for the second and later places of a day, their order (``2026-07-14``,
``2026-07-14-2``, ``uploaded-2026-11-30``): the same photos always give the same ids; a photo of an earlier,
new place renumbers the places after it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

NEAR_METRES = 500.0
EARTH_RADIUS_METRES = 6_371_008.8
ALBUM_ID = re.compile(r"(uploaded-)?[0-9]{4}-[0-9]{2}-[0-9]{2}(-[1-9][0-9]{0,4})?")  # the API document's, unanchored
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class AlbumPhoto:
    """What grouping needs of a READY photo."""

    media_id: str
    uploaded_at: str  # ISO 8601, UTC
    taken_at: str | None = None  # ISO 8601 local time, as the camera wrote it
    taken_offset: str | None = None  # "+02:00"
    latitude: float | None = None
    longitude: float | None = None

    @property
    def local(self) -> datetime | None:
        if not self.taken_at:
            return None
        try:
            return datetime.fromisoformat(self.taken_at).replace(tzinfo=None)
        except ValueError:
            return None

    @property
    def instant(self) -> datetime:
        """When it was taken (UTC): local time less its offset; without one, the local time as UTC; without a
        date, its upload."""
        local = self.local
        if local is None:
            return _utc(self.uploaded_at)
        return local.replace(tzinfo=UTC) - parse_offset(self.taken_offset)

    @property
    def day(self) -> date:
        local = self.local
        return local.date() if local is not None else _utc(self.uploaded_at).date()

    @property
    def position(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return self.latitude, self.longitude


@dataclass
class Album:
    album_id: str
    kind: str  # place | day | uploaded
    day: date
    photos: list[AlbumPhoto] = field(default_factory=list)  # in the order they were taken

    @property
    def start(self) -> datetime:
        return self.photos[0].instant

    @property
    def end(self) -> datetime:
        return self.photos[-1].instant

    @property
    def center(self) -> tuple[float, float] | None:
        """The mean position of its photos with GPS (None without any)."""
        positions = [p.position for p in self.photos if p.position is not None]
        if not positions:
            return None
        return (
            round(sum(lat for lat, _ in positions) / len(positions), 5),
            round(sum(lon for _, lon in positions) / len(positions), 5),
        )

    @property
    def title(self) -> str:
        when = f"{self.day:%a} {self.day.day} {self.day:%b %Y}"
        if self.kind == "uploaded":
            return f"Uploaded {when}"
        center = self.center
        if center is None:
            return when
        lat, lon = center
        return f"{when} · {abs(lat):.3f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.3f}° {'E' if lon >= 0 else 'W'}"


def parse_offset(text: str | None) -> timedelta:
    """``+02:00`` → 2 h; anything else (absent, malformed, beyond ±14 h) → 0."""
    match = _OFFSET.match(text or "")
    if not match:
        return timedelta(0)
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=14) or int(minutes) >= 60:
        return timedelta(0)
    return -offset if sign == "-" else offset


def distance_metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_METRES * math.asin(min(1.0, math.sqrt(h)))


def albums(photos: Iterable[AlbumPhoto], near_metres: float = NEAR_METRES) -> list[Album]:
    """The albums of these photos, most recent first."""
    dated: dict[date, list[AlbumPhoto]] = {}
    undated: dict[date, list[AlbumPhoto]] = {}
    for photo in photos:
        (dated if photo.local is not None else undated).setdefault(photo.day, []).append(photo)
    found: list[Album] = []
    for day, of_day in dated.items():
        found += _places(day, sorted(of_day, key=_taken_order), near_metres)
    for day, of_day in undated.items():
        found.append(Album(f"uploaded-{day.isoformat()}", "uploaded", day, sorted(of_day, key=_taken_order)))
    return sorted(found, key=lambda album: (album.day, album.kind != "uploaded", album.start), reverse=True)


def _taken_order(photo: AlbumPhoto) -> tuple[datetime, str]:
    return photo.instant, photo.media_id


def _places(day: date, photos: list[AlbumPhoto], near_metres: float) -> list[Album]:
    """One day's photos (in the order taken) by place: groups of GPS positions chained within ``near_metres``;
    photos without GPS join the group of the photo with GPS taken closest in time."""
    located = [p for p in photos if p.position is not None]
    if not located:
        return [Album(day.isoformat(), "day", day, photos)]
    group = _chained(located, near_metres)
    for photo in photos:
        if photo.position is None:
            nearest = min(located, key=lambda other: (abs(other.instant - photo.instant), other.media_id))
            group[photo.media_id] = group[nearest.media_id]
    members: dict[int, list[AlbumPhoto]] = {}
    for photo in photos:
        members.setdefault(group[photo.media_id], []).append(photo)
    ordered = sorted(members.values(), key=lambda of_place: _taken_order(of_place[0]))
    return [
        Album(day.isoformat() if number == 1 else f"{day.isoformat()}-{number}", "place", day, of_place)
        for number, of_place in enumerate(ordered, start=1)
    ]


def _chained(located: list[AlbumPhoto], near_metres: float) -> dict[str, int]:
    """media id → group number: photos within ``near_metres`` of each other are in one group, transitively.

    Positions are compared at four decimals (about 10 m: a phone's own jitter), so a day of a thousand photos at a
    few spots compares a few spots; the spots are swept in latitude order, each compared only with those less than
    ``near_metres`` further north."""
    spots = sorted({_spot(p) for p in located})
    parent = list(range(len(spots)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    window = math.degrees(near_metres / EARTH_RADIUS_METRES)
    for i, a in enumerate(spots):
        for j in range(i + 1, len(spots)):
            b = spots[j]
            if b[0] - a[0] > window:
                break
            if root(i) != root(j) and distance_metres(a, b) <= near_metres:
                parent[root(j)] = root(i)
    index = {spot: number for number, spot in enumerate(spots)}
    return {photo.media_id: root(index[_spot(photo)]) for photo in located}


def _spot(photo: AlbumPhoto) -> tuple[float, float]:
    assert photo.latitude is not None and photo.longitude is not None
    return round(photo.latitude, 4), round(photo.longitude, 4)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
