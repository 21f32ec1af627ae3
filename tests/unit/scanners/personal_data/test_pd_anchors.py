import pytest

from relay.scanners.personal_data import anchors

TEXT = ("Mr Patel has been DIAGNOSED with Diabetes. password: x1 GHP_abc. Date of Birth 1/2/1990.\n"
        "Kind regards,\nİstanbul office — Straße 5, ghp_ token, born\n"
        "-----------\nnot -- here\n-- \n > --\n")


def test_hyperscan_and_aho_corasick_agree():
    if anchors.hyperscan is None:
        pytest.fail("hyperscan is a declared dependency; it should import here")
    fast = anchors.make_matcher(prefer_hyperscan=True).find(TEXT)
    slow = anchors.make_matcher(prefer_hyperscan=False).find(TEXT)
    assert sorted(fast) == sorted(slow)
    for start, end, _family, _category, word in fast:
        assert TEXT[start:end].lower() == word


def test_families():
    fams = {(f, w) for _, _, f, _, w in anchors.find(TEXT)}
    assert ("term", "diagnosed with") in fams and ("password", "password") in fams
    assert ("dob", "date of birth") in fams and ("signoff", "regards") in fams and ("token", "ghp_") in fams


def test_dashes_count_as_a_sign_off_only_where_a_line_starts_with_them():
    for matcher in (anchors.make_matcher(prefer_hyperscan=True), anchors.make_matcher(prefer_hyperscan=False)):
        starts = [s for s, _, family, _, word in matcher.find(TEXT) if family == "signoff" and word == "--"]
        assert [TEXT[s - 1:s + 3] for s in starts] == ["\n---", "\n-- ", " --\n"]


def test_matcher_is_usable_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(anchors.find, [TEXT] * 32))
    assert all(r == results[0] for r in results)
