"""mailpulse.toml: every mistake names the file, the line and the fix."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.policy import FrequencyCap
from mailpulse.project import MAX_AUTO_COURIERS, Project, load_config, load_project
from tests.e2e.conftest import write_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", smtp_port=2525)


def edit(project: Path, old: str, new: str) -> None:
    toml = project / "mailpulse.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))


def line_of(project: Path, needle: str) -> int:
    lines = (project / "mailpulse.toml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_a_good_project_loads(project: Path) -> None:
    loaded = load_project(project)
    assert loaded.config.project.name == "Testshop"
    assert loaded.durations.retry_schedule == (1.0,)
    assert loaded.sender_domain == "shop.test"
    assert set(loaded.journeys) == {"welcome", "cart"}


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            "max_connections = 8",
            "max_conections = 8",
            "max_conections",
            "did you mean 'max_connections'",
        ),
        ('max_age = "1h"', 'max_age = "1 fortnight"', "max_age", "not a duration"),
        ("port = 2525", 'port = "twenty"', "port =", "Expected `int`"),
        ('from = "Testshop <hello@shop.test>"', 'from = "nobody"', "from =", "not an address"),
        ("[smtp]", "[smtpp]", "[smtpp]", "did you mean 'smtp'"),
        (
            "max_connections = 8",
            'max_connections = 8\nusername = "u"',
            "starttls",
            "AUTH would send the password in clear",
        ),
        ("max_connections = 8", "max_connections = 0", "max_connections", "at least 1"),
        (
            'return_path = "bounces@shop.test"',
            'return_path = "returned-mail-of-the-shop@shop.test"',
            "return_path =",
            "keep it to 18",
        ),
        (
            "couriers = 1",
            'couriers = 1\n[policy]\nsoft_bounce_limit = "5"',
            "soft_bounce",
            "'5/7d'",
        ),
        ("couriers = 1", "couriers = 1\n[inbound]\nport = 70000", "port = 70000", "<= 65535"),
        ("couriers = 1", "couriers = 1\n[inbound]\nmax_sise = 5", "max_sise", "'max_size'"),
    ],
)
def test_config_errors_name_the_line(
    project: Path, old: str, new: str, needle: str, message: str
) -> None:
    edit(project, old, new)
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.path.name == "mailpulse.toml"
    assert err.value.line == line_of(project, needle)
    assert message in err.value.message


def test_broken_toml_names_its_line(project: Path) -> None:
    edit(project, 'name = "Testshop"', 'name = "Testshop')
    with pytest.raises(ProjectError) as err:
        load_config(project)
    assert err.value.line == line_of(project, 'name = "Testshop')


def test_missing_dkim_key_says_how_to_make_one(project: Path) -> None:
    (project / "dkim" / "key.pem").unlink()
    with pytest.raises(ProjectError, match="mailpulse dkim keygen"):
        load_project(project)


def add_shaping(project: Path, text: str) -> None:
    """Shaping rules after the [delivery] table, which write_project puts last."""
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text() + textwrap.dedent(text))


def test_shaping_rules_load(project: Path) -> None:
    add_shaping(
        project,
        """
        [[delivery.shaping]]
        domain = "Gmail.com"
        rate = "6000/m"

        [[delivery.shaping]]
        domain = "*"
        rate = "50000/h"
        """,
    )
    shaping = load_project(project).shaping
    gmail = shaping.destination("ann@googlemail.gmail.com")
    other = shaping.destination("ann@shop.test")
    assert gmail is not None and (gmail.key, gmail.rule.rate) == ("gmail.com", 100.0)
    assert other is not None and other.key == "shop.test"
    assert other.rule.rate == pytest.approx(50000 / 3600)


def test_shaping_rules_may_be_written_inline(project: Path) -> None:
    edit(
        project,
        'max_age = "1h"',
        'max_age = "1h"\nshaping = [{domain = "gmail.com", rate = "100/s"}]',
    )
    gmail = load_project(project).shaping.destination("ann@gmail.com")
    assert gmail is not None and gmail.rule.rate == 100.0


def test_without_shaping_rules_nothing_is_limited(project: Path) -> None:
    assert not load_project(project).shaping


TWO_RULES = """
[[delivery.shaping]]
domain = "gmail.com"
rate = "100/s"

[[delivery.shaping]]
domain = "yahoo.com"
rate = "20/s"
"""


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ('rate = "20/s"', 'rate = "fast"', '"fast"', "not a rate"),
        ('rate = "20/s"', 'rate = "0/s"', '"0/s"', "more than 0"),
        ('rate = "20/s"', "rate = 20", "rate = 20", "Expected `str`, got `int`"),
        ('rate = "20/s"', 'ratee = "20/s"', "ratee", "did you mean 'rate'"),
        ('rate = "100/s"', "", "[[delivery.shaping]]", "give a rate, connections or messages"),
        ('domain = "yahoo.com"', 'mx = "yahoodns"', "yahoodns", "write the end of the mail hosts"),
        ('domain = "yahoo.com"', 'mx = "*"', 'mx = "*"', "write the end of the mail hosts"),
        ('domain = "yahoo.com"', 'domain = "yahoo.com"\nmx = "a.b"', "a.b", "not both"),
        ('domain = "gmail.com"', "", "[[delivery.shaping]]", "give the domain (or '*') or the"),
        ('rate = "20/s"', "connections = 0", "connections = 0", "must be at least 1, not 0"),
        ('rate = "20/s"', "messages_per_connection = -2", "messages_per", "at least 1, not -2"),
        ('rate = "20/s"', 'connections = "5"', 'connections = "5"', "Expected `int | null`"),
        ('domain = "yahoo.com"', 'domain = "yahoo com"', "yahoo com", "not a domain name"),
        ('domain = "yahoo.com"', 'domain = "*.yahoo.com"', "*.yahoo.com", "covers its subdomains"),
        ('domain = "yahoo.com"', 'domain = "GMAIL.com"', "GMAIL", "has a rule already (line"),
    ],
)
def test_shaping_errors_name_the_line(
    project: Path, old: str, new: str, needle: str, message: str
) -> None:
    add_shaping(project, TWO_RULES)
    edit(project, old, new)
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.line == line_of(project, needle)
    assert message in err.value.message


def test_rules_by_mail_host_and_connections_load(project: Path) -> None:
    add_shaping(
        project,
        """
        [[delivery.shaping]]
        mx = ".Google.com"
        connections = 5
        messages_per_connection = 50

        [[delivery.shaping]]
        domain = "gmail.com"
        rate = "10/s"
        """,
    )
    shaping = load_project(project).shaping
    workspace = shaping.destination("ann@shop.test", ["aspmx.l.google.com"])
    assert workspace is not None and workspace.key == "mx:google.com"
    assert (workspace.rule.rate, workspace.rule.connections) == (None, 5)
    assert workspace.rule.messages_per_connection == 50
    gmail = shaping.destination("ann@gmail.com", ["gmail-smtp-in.l.google.com"])
    assert gmail is not None and gmail.key == "gmail.com"  # a domain rule wins


def test_one_rule_per_mail_host_suffix(project: Path) -> None:
    add_shaping(project, '[[delivery.shaping]]\nmx = "google.com"\nconnections = 5\n')
    add_shaping(project, '[[delivery.shaping]]\nmx = "GOOGLE.com"\nrate = "1/s"\n')
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.line == line_of(project, '"GOOGLE.com"')
    assert "has a rule already" in err.value.message


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ('["dns.example:53"]', "is an IP address"),
        ('["127.0.0.1:0"]', "from 1 to 65535"),
        ('["[::1]x"]', "[address]:port"),
    ],
)
def test_nameservers_must_be_addresses(project: Path, written: str, message: str) -> None:
    edit(project, 'max_age = "1h"', f'max_age = "1h"\nnameservers = {written}')
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.line == line_of(project, "nameservers")
    assert message in err.value.message


def test_nameservers_load(project: Path) -> None:
    edit(project, 'max_age = "1h"', 'max_age = "1h"\nnameservers = ["127.0.0.1:5353", "::1"]')
    assert load_project(project).nameservers == (("127.0.0.1", 5353), ("::1", 53))


def test_builtin_shaping_under_direct_mx(project: Path) -> None:
    assert not load_project(project).shaping  # through a relay: the relay's business
    edit(project, "max_connections = 8", 'max_connections = 8\nroute = "mx"')
    shaping = load_project(project).shaping
    gmail = shaping.destination("ann@gmail.com")
    workspace = shaping.destination("ann@shop.test", ["alt1.aspmx.l.google.com"])
    assert gmail is not None and workspace is not None
    assert gmail.key == workspace.key == "google"  # one provider, one destination
    assert (gmail.rule.connections, gmail.rule.messages_per_connection) == (5, 50)
    assert shaping.destination("ann@example.com", ["mx.example.com"]) is None


def test_a_project_rule_replaces_the_builtin_one(project: Path) -> None:
    edit(project, "max_connections = 8", 'max_connections = 8\nroute = "mx"')
    add_shaping(project, '[[delivery.shaping]]\ndomain = "gmail.com"\nconnections = 2\n')
    shaping = load_project(project).shaping
    gmail = shaping.destination("ann@gmail.com")
    assert gmail is not None and (gmail.key, gmail.rule.connections) == ("gmail.com", 2)
    hotmail = shaping.destination("ann@hotmail.com")
    assert hotmail is not None and hotmail.key == "microsoft"


@pytest.mark.parametrize(
    ("route", "builtin", "on"), [("mx", "false", False), ("relay", "true", True)]
)
def test_builtin_shaping_may_be_turned_off_or_on(
    project: Path, route: str, builtin: str, on: bool
) -> None:
    edit(project, "max_connections = 8", f'max_connections = 8\nroute = "{route}"')
    edit(project, 'max_age = "1h"', f'max_age = "1h"\nbuiltin_shaping = {builtin}')
    assert bool(load_project(project).shaping) is on


def test_send_limits_load(project: Path) -> None:
    add_shaping(project, '[delivery.limits]\nrate = "14/s"\nhourly = 5000\ndaily = 50000\n')
    limits = load_project(project).limits
    assert limits.rate == 14.0
    assert [(q.name, q.limit, q.period) for q in limits.quotas] == [
        ("daily", 50000, 86400.0),
        ("hourly", 5000, 3600.0),
    ]
    assert not load_project_without_limits(project).limits


def load_project_without_limits(project: Path) -> Project:
    edit(project, '[delivery.limits]\nrate = "14/s"\nhourly = 5000\ndaily = 50000\n', "")
    return load_project(project)


@pytest.mark.parametrize(
    ("written", "needle", "message"),
    [
        ("hourly = 0", "hourly", "[delivery.limits] hourly: a quota is a number of sends"),
        ("daily = -5", "daily", "at least 1, not -5"),
        ('daily = "5000"', "daily", "Expected `int | null`, got `str`"),
        ("hourly = 2.5", "hourly", "Expected `int | null`, got `float`"),
        ('rate = "14/fortnight"', "rate", "[delivery.limits] rate:"),
        ("quota = 5", "quota", "unknown key [delivery.limits] 'quota'"),
    ],
)
def test_send_limit_errors_name_the_line(
    project: Path, written: str, needle: str, message: str
) -> None:
    add_shaping(project, f"\n[delivery.limits]\n{written}\n")
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.line == line_of(project, needle)
    assert message in err.value.message


@pytest.mark.parametrize(
    ("written", "needle", "message"),
    [
        ('route = "direct"', "route", "write 'relay' (through host) or 'mx'"),
        ('mx_port = "x"', "mx_port", "Expected `int`"),
    ],
)
def test_route_errors_name_the_line(project: Path, written: str, needle: str, message: str) -> None:
    edit(project, "max_connections = 8", f"max_connections = 8\n{written}")
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.line == line_of(project, needle)
    assert message in err.value.message


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no mailpulse\.toml"):
        load_project(tmp_path)


def test_the_default_time_zone_must_be_one(project: Path) -> None:
    assert load_project(project).config.project.timezone == "UTC"
    edit(project, 'name = "Testshop"', 'name = "Testshop"\ntimezone = "Europe/Berlln"')
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert f"mailpulse.toml:{line_of(project, 'timezone')}:" in str(caught.value)
    assert "not a time zone" in str(caught.value)


def test_segments_load_with_the_project_and_a_bad_one_names_its_line(project: Path) -> None:
    (project / "segments").mkdir()
    vip = project / "segments" / "vip.yaml"
    vip.write_text("conditions:\n  trait: lifetime_value\n  gte: 1000\n")
    assert set(load_project(project).segments) == {"vip"}
    vip.write_text("conditions:\n  trait: lifetime_value\n  greater: 1000\n")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert "vip.yaml:3:" in str(caught.value)


def test_the_send_policy_loads(project: Path) -> None:
    edit(
        project,
        "[delivery]",
        '[policy]\nquiet_hours = "21:00-08:00"\nfrequency_cap = "3/1d"\n'
        'topic_caps = {offers = "1/12h"}\n\n[delivery]',
    )
    policy = load_project(project).send_policy
    assert policy.topic_caps["offers"] == FrequencyCap(1, 43200.0)
    assert policy.quiet_hours is not None and policy.quiet_hours.start.hour == 21
    assert policy.frequency_cap is not None
    assert (policy.frequency_cap.count, policy.frequency_cap.period) == (3, 86400.0)


def test_a_send_window_is_the_quiet_hours_outside_it(project: Path) -> None:
    edit(project, "[delivery]", '[policy]\nsend_window = "09:00-20:00"\n\n[delivery]')
    quiet = load_project(project).send_policy.quiet_hours
    assert quiet is not None and (quiet.start.hour, quiet.end.hour) == (20, 9)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('quiet_hours = "21-8"', "e.g. '21:00-08:00'"),
        ('quiet_hours = "09:00-09:00"', "e.g. '21:00-08:00'"),
        ('send_window = "9-20"', "e.g. '09:00-20:00'"),
        ('send_window = "09:00-20:00"\nquiet_hours = "21:00-08:00"', "not both"),
        ('frequency_cap = "3 per day"', "e.g. '3/1d'"),
        ('frequency_cap = "0/1d"', "e.g. '3/1d'"),
        ('frequency_cap = "3/soon"', "e.g. '3/1d'"),
        ('topic_caps = {offers = "often"}', "offers: write how many per how long"),
        ('topic_caps = {offer = "1/1d"}', "offer: no topic 'offer': did you mean 'offers'?"),
    ],
)
def test_send_policy_errors_name_the_line(project: Path, line: str, reason: str) -> None:
    edit(project, "[delivery]", f"[policy]\n{line}\n\n[delivery]")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    key = line.split(" =")[0]
    assert f"mailpulse.toml:{line_of(project, key)}: [policy] {key}" in str(caught.value)
    assert reason in str(caught.value)


def test_couriers_are_one_per_core_unless_told(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", 2525)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("couriers = 1\n", ""))
    cores = len(os.sched_getaffinity(0))
    assert load_project(project).couriers == max(1, min(cores, MAX_AUTO_COURIERS))
    toml.write_text(toml.read_text().replace("[delivery]\n", "[delivery]\ncouriers = 3\n"))
    assert load_project(project).couriers == 3


@pytest.mark.parametrize("value", ["0", '"many"', "2.5"])
def test_a_courier_count_that_is_none_is_refused_with_its_line(tmp_path: Path, value: str) -> None:
    project = write_project(tmp_path / "p", 2525)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("couriers = 1\n", f"couriers = {value}\n"))
    line = toml.read_text().splitlines().index(f"couriers = {value}") + 1
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert refused.value.line == line
    assert "couriers" in str(refused.value)


def test_topics_load_with_their_kind(project: Path) -> None:
    topics = load_project(project).topics
    assert set(topics) == {"offers", "newsletter"}
    offers, newsletter = topics["offers"], topics["newsletter"]
    assert (offers.name, offers.description) == ("Offers", "Sales and discounts")
    assert not offers.opt_in
    # Double opt-in is opt-in without saying so.
    assert (newsletter.opt_in, newsletter.double_opt_in) == (True, True)
    assert load_project(project).send_policy.topics == topics
    edit(project, "[topics.offers]", "[topics.vip-news]\nopt_in = true\n\n[topics.offers]")
    vip = load_project(project).topics["vip-news"]
    assert (vip.name, vip.opt_in, vip.double_opt_in) == ("vip-news", True, False)


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            'description = "The weekly letter"',
            'descripton = "The weekly letter"',
            "descripton",
            "unknown key [topics.newsletter] 'descripton' (did you mean 'description'?)",
        ),
        (
            "double_opt_in = true",
            "double_opt_in = true\nopt_in = false",
            "opt_in = false",
            "[topics.newsletter] opt_in: a double opt-in topic is opt-in",
        ),
        ("double_opt_in = true", 'double_opt_in = "yes"', "double_opt_in", "Expected `bool`"),
        ("[topics.offers]", '[topics."big offers"]', "big offers", "a topic id is 1 to 64"),
    ],
)
def test_topic_mistakes_name_the_line(
    project: Path, old: str, new: str, needle: str, message: str
) -> None:
    edit(project, old, new)
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert caught.value.line == line_of(project, needle)
    assert message in caught.value.message


def test_a_journey_naming_an_unknown_topic_is_refused_with_its_line(project: Path) -> None:
    journey = project / "journeys" / "promo.yaml"
    journey.write_text("trigger: {event: Promo}\nsteps:\n  - send: welcome\n    topic: ofers\n")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (journey, 4)
    assert "no topic 'ofers': did you mean 'offers'?" in caught.value.message
    assert "[topics.ofers]" in caught.value.message
    journey.write_text("trigger: {event: Promo}\ntopic: nope\nsteps:\n  - send: welcome\n")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path, caught.value.line) == (journey, 2)
    journey.write_text("trigger: {event: Promo}\ntopic: offers\nsteps:\n  - send: welcome\n")
    [step] = load_project(project).journeys["promo"].steps
    assert step.topic == "offers"


@pytest.mark.parametrize("value", ["0", "-3", '"lots"'])
def test_deliveries_in_flight_below_one_are_refused_with_their_line(
    tmp_path: Path, value: str
) -> None:
    """None in flight would hold every send for ever, without a word."""
    project = write_project(tmp_path / "p", 2525)
    toml = project / "mailpulse.toml"
    toml.write_text(
        toml.read_text().replace("[delivery]\n", f"[delivery]\nconcurrency = {value}\n")
    )
    line = toml.read_text().splitlines().index(f"concurrency = {value}") + 1
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert refused.value.line == line
    assert "concurrency" in str(refused.value)
