"""Domain names are checked and normalised before anything is sent to a CA."""

import pytest

from orders.domains import display_name, normalize_domains, requires_dns01


def test_names_are_lowercased_stripped_and_duplicates_merged_in_order():
    names, errors = normalize_domains(["Example.COM", " www.example.com ", "example.com."])
    assert names == ["example.com", "www.example.com"]
    assert errors == []


def test_a_string_is_split_on_newlines_commas_and_semicolons():
    raw = "a.example.com, b.example.com\nc.example.com;;A.example.com\n"
    names, errors = normalize_domains(raw)
    assert names == ["a.example.com", "b.example.com", "c.example.com"]
    assert errors == []


def test_international_names_become_punycode_and_merge_with_their_ascii_form():
    names, errors = normalize_domains(["Bücher.example", "xn--bcher-kva.example"])
    assert names == ["xn--bcher-kva.example"]
    assert errors == []
    assert display_name("*.xn--bcher-kva.example") == "*.bücher.example"


def test_wildcards_are_allowed_only_as_the_whole_leftmost_label():
    names, errors = normalize_domains(["*.example.com", "a.*.example.com", "w*.example.com"])
    assert names == ["*.example.com"]
    assert len(errors) == 2
    assert errors[0].startswith("“a.*.example.com”: a wildcard “*” may only be the whole leftmost")
    assert requires_dns01("*.example.com") and not requires_dns01("example.com")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("exa mple.com", "“exa mple.com”: spaces are not allowed in a domain name"),
        ("com", "“com”: a single-label name cannot get a certificate; use a full domain name"),
        ("co.uk", "“co.uk”: “co.uk” is a public suffix; name a domain registered under it"),
        ("github.io", "“github.io”: “github.io” is a public suffix"),
        ("*.co.uk", "“*.co.uk”: a wildcard directly under the public suffix “co.uk”"),
        ("192.0.2.1", "“192.0.2.1”: IP addresses are not supported"),
        ("under_score.example.com", "underscores are not allowed"),
        ("-lead.example.com", "the label “-lead” may contain only letters, digits and inner"),
        ("trail-.example.com", "the label “trail-” may contain only"),
        ("a..example.com", "the name has an empty label"),
        ("ab--cd.example.com", "has “--” in 3rd and 4th position"),
        ("xn--zz.example.com", "the label “xn--zz” is not valid punycode"),
        ("https://example.com/", "enter a domain name only"),
        ("example.com:443", "enter a domain name only"),
        ("a" * 64 + ".example.com", "is longer than 63 characters"),
        (".".join(["a" * 60] * 5) + ".com", "the name is longer than 253 characters"),
        ("exa☃mple.com", "not a valid internationalised domain name"),
    ],
)
def test_each_bad_name_gets_one_message(raw, message):
    names, errors = normalize_domains(["ok.example.com", raw])
    assert names == ["ok.example.com"]
    assert len(errors) == 1
    assert errors[0].startswith(message) or message in errors[0], errors[0]


def test_names_under_a_public_suffix_and_unknown_tlds_are_accepted():
    names, errors = normalize_domains(["example.co.uk", "me.github.io", "host.test", "a.corp"])
    assert names == ["example.co.uk", "me.github.io", "host.test", "a.corp"]
    assert errors == []


def test_at_most_100_names_after_merging_duplicates():
    hundred = [f"h{i}.example.com" for i in range(100)]
    assert normalize_domains([*hundred, "H0.example.com"]) == (hundred, [])
    names, errors = normalize_domains([*hundred, "one-more.example.com"])
    assert len(names) == 101
    assert errors == ["101 names given; an order can have at most 100"]
    assert normalize_domains(hundred[:3], max_names=2)[1] == [
        "3 names given; an order can have at most 2"
    ]


def test_empty_entries_are_ignored():
    assert normalize_domains(["", "  ", "a.example.com"]) == (["a.example.com"], [])
    assert normalize_domains("") == ([], [])
