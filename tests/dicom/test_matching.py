"""Attribute matching rules (PS3.4 C.2.2.2) as store filters."""

from __future__ import annotations

import pytest

from server.dicom.matching import QueryError, build_filter, wildcard_regex


def test_universal_matching_adds_nothing() -> None:
    assert build_filter("STUDY", {"PatientName": "", "StudyDate": "", "PatientID": "*"}) == {}


def test_single_value_and_wildcards() -> None:
    assert build_filter("STUDY", {"PatientID": "P001"}) == {"q.PatientID": "P001"}
    assert build_filter("STUDY", {"AccessionNumber": "AC?1*"}) == {
        "q.AccessionNumber": {"$regex": "^AC.1.*$"}
    }


def test_person_names_match_case_insensitively() -> None:
    assert build_filter("STUDY", {"PatientName": "DOE^J*"}) == {
        "q.PatientName_lc": {"$regex": "^doe\\^j.*$"}
    }
    assert build_filter("PATIENT", {"PatientName": "Doe^Jane"}) == {"q.PatientName_lc": "doe^jane"}


def test_regex_metacharacters_are_literal() -> None:
    assert wildcard_regex("a.b(c)*") == "^a\\.b\\(c\\).*$"


def test_date_and_time_ranges() -> None:
    assert build_filter("STUDY", {"StudyDate": "20240101-20240131"}) == {
        "q.StudyDate": {"$gte": "20240101", "$lte": "20240131"}
    }
    assert build_filter("STUDY", {"StudyDate": "-20240131"}) == {
        "q.StudyDate": {"$lte": "20240131"}
    }
    assert build_filter("STUDY", {"StudyDate": "20240101-"}) == {
        "q.StudyDate": {"$gte": "20240101"}
    }
    assert build_filter("STUDY", {"StudyTime": "1000-1100"}) == {
        "q.StudyTime": {"$gte": "1000", "$lte": "1100\uffff"}
    }


def test_uid_lists() -> None:
    assert build_filter("SERIES", {"SeriesInstanceUID": "1.2\\1.3"}) == {
        "_id": {"$in": ["1.2", "1.3"]}
    }
    assert build_filter("IMAGE", {"StudyInstanceUID": "1.2"}) == {"study_uid": "1.2"}


def test_numbers() -> None:
    assert build_filter("SERIES", {"SeriesNumber": "3"}) == {"q.SeriesNumber": 3}
    with pytest.raises(QueryError):
        build_filter("SERIES", {"SeriesNumber": "three"})


@pytest.mark.parametrize("value", ["2024", "2024-01-01x", "-", "abcdefgh"])
def test_bad_dates_are_refused(value: str) -> None:
    with pytest.raises(QueryError):
        build_filter("STUDY", {"StudyDate": value})


def test_keys_of_other_levels_are_ignored_at_that_level() -> None:
    assert build_filter("IMAGE", {"PatientName": "X"}) == {}
