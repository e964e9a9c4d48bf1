"""What the API returns besides photos (recognition.facade.photo_json, as the CLI's JSON): people."""
from __future__ import annotations


def people_json(people: list[tuple[str, int]]) -> list[dict]:
    """Everyone enrolled and their number of photos."""
    return [{"name": name, "photos": count} for name, count in people]
