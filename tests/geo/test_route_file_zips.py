"""Zipped route files pass the same zip checks as attachments (``breitband.zips``): nested archives, bombs, symbolic
links and encrypted members are refused before GDAL sees the file, as 422 problem+json naming the member."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from breitband.errors import ProblemError
from geo.route_files import read_route_file
from tests.geo.test_route_files import zipped_shapefile


def rezip(body: bytes, extra: dict[str, bytes], link: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            zf.writestr(info.filename, src.read(info))
        for name, data in extra.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return out.getvalue()


def refusal(body: bytes) -> ProblemError:
    with pytest.raises(ProblemError) as exc:
        read_route_file(body)
    return exc.value


def test_zipped_route_files_are_checked_like_attachments(tmp_path):
    good = zipped_shapefile(tmp_path)
    assert read_route_file(good).format == "Shapefile"
    cases = [
        (rezip(good, {"trasse/alt.zip": good}), "invalid-zip", "nested-archive", "trasse/alt.zip"),
        (rezip(good, {"trasse/notes.txt": bytes(8 << 20)}), "zip-too-large", "ratio", "trasse/notes.txt"),
        (rezip(good, {}, link="trasse/link.cpg"), "invalid-zip", "symlink", "trasse/link.cpg"),
        (rezip(good, {"trasse/TRASSE.SHP": b"x"}), "invalid-zip", "duplicate-name", "trasse/TRASSE.SHP"),
        (rezip(good, {"trasse\\x.prj": b"x"}), "invalid-zip", "unsafe-path", "trasse\\x.prj"),
    ]
    for body, type_, reason, member in cases:
        exc = refusal(body)
        assert (exc.status, exc.type, exc.extra["reason"], exc.extra["member"]) == (422, type_, reason, member)


def test_a_zip_bomb_sent_to_resolve_is_422_problem_json(client, he, tmp_path):
    body = rezip(zipped_shapefile(tmp_path), {"trasse/trasse.xml": bytes(8 << 20)})
    r = client.post("/api/v1/resolve", headers=he.operator.headers, content=body)
    assert (r.status_code, r.headers["content-type"]) == (422, "application/problem+json")
    p = r.json()
    assert (p["type"].rsplit("/", 1)[1], p["reason"], p["member"]) == ("zip-too-large", "ratio", "trasse/trasse.xml")
