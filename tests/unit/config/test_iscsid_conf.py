"""iscsid.conf through configobj, without configobj's pitfalls; templates of new records."""

from __future__ import annotations

from pathlib import Path

import pytest
from configobj import ConfigObj, ConfigObjError

from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import DatabaseError, IscsiErr

SHIPPED = Path(__file__).resolve().parents[3] / "conf" / "iscsid.conf"


def conf(text: str) -> IscsidConf:
    return IscsidConf.parse(text, Path("/etc/iscsi/iscsid.conf"))


def messages(c: IscsidConf) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in c.problems]


# -- the pitfalls (notes §3.3): raw configobj gets each wrong, IscsidConf does not ---------


def test_hash_inside_a_value_is_kept() -> None:
    line = "node.session.auth.password = pa#ss word"
    assert ConfigObj([line], list_values=False)["node.session.auth.password"] == "pa"
    c = conf(line + "\n")
    assert c.values == {"node.session.auth.password": "pa#ss word"}
    assert c.template(RecordType.NODE)["node.session.auth.password"] == "pa#ss word"


def test_commas_are_not_lists() -> None:
    assert ConfigObj(["a = CRC32C,None"])["a"] == ["CRC32C", "None"]
    c = conf(
        "node.conn[0].iscsi.HeaderDigest = CRC32C,None\n"
        "node.session.auth.password = se,cr,et\n"
        "node.session.auth.chap_algs = SHA256, MD5\n"
    )
    assert c.get("node.conn[0].iscsi.HeaderDigest") == "CRC32C,None"
    template = c.template(RecordType.NODE)
    assert template["node.conn[0].iscsi.HeaderDigest"] == "CRC32C,None"
    assert template["node.session.auth.password"] == "se,cr,et"
    assert template["node.session.auth.chap_algs"] == "SHA256,MD5"
    assert c.problems == []


def test_duplicate_keys_last_wins() -> None:
    with pytest.raises(ConfigObjError):
        ConfigObj(["a = 1", "a = 2"], list_values=False)
    c = conf("node.startup = manual\nnode.startup = automatic\n")
    assert c.get("node.startup") == "automatic"
    assert c.line_of("node.startup") == 2
    assert c.template(RecordType.NODE)["node.startup"] == "automatic"
    assert c.problems == []


def test_lines_without_equals_warn_and_go_on() -> None:
    with pytest.raises(ConfigObjError):
        ConfigObj(["foo bar", "a = 1"], list_values=False)
    c = conf("foo bar\nnode.startup = automatic\nnode.leading_login=Yes\n")
    assert c.values == {"node.startup": "automatic"}
    assert messages(c) == [
        (1, "Config file line 1 does not have '=' separator"),
        (3, "Config file line 3 does not have '=' separator"),  # open-iscsi needs a blank
    ]


def test_bracket_lines_start_no_section() -> None:
    assert ConfigObj(["[sec]", "a = 1"], list_values=False) == {"sec": {"a": "1"}}
    c = conf("[sec]\nnode.startup = automatic\n[x] = 1\n")
    assert c.values == {"node.startup": "automatic", "[x]": "1"}
    assert (1, "Config file line 1 does not have value") in messages(c)


def test_quotes_and_spaces_are_literal() -> None:
    c = conf('node.session.auth.username = "quoted" \'x\nnode.session.auth.password =  a  b \n')
    assert c.get("node.session.auth.username") == '"quoted" \'x'
    assert c.get("node.session.auth.password") == "a  b"


def test_percent_and_interpolation_syntax_are_literal() -> None:
    c = conf("node.session.auth.password = %(x)s $y %41\n")
    assert c.get("node.session.auth.password") == "%(x)s $y %41"


def test_non_utf8_bytes_survive(tmp_path: Path) -> None:
    path = tmp_path / "iscsid.conf"
    path.write_bytes(b"node.session.auth.password = \xff\xfe\n")
    c = IscsidConf.load(path)
    value = c.template(RecordType.NODE)["node.session.auth.password"]
    assert value.encode("utf-8", "surrogateescape") == b"\xff\xfe"


# -- warnings ----------------------------------------------------------------------------


def test_problems_name_file_and_line() -> None:
    c = conf(
        "node.startup = bogus\n"
        "node.sesion.cmds_max = 8\n"
        "node.session.sess_reopen_log_freq = 3\n"
        "node.session.auth.chap_algs = MD5,MD5,bogus\n"
        "node.session.cmds_max = abc\n"
    )
    assert messages(c) == [
        (1, "config file line 1 contains unknown value format 'bogus' for parameter name "
            "'node.startup'"),
        (2, "unknown parameter name 'node.sesion.cmds_max' (ignored)"),
        (3, "parameter name 'node.session.sess_reopen_log_freq' is new in open-iscsi 2.1.11; "
            "2.1.8 ignores it"),
        (4, "Ignoring repeated value 'MD5' for 'node.session.auth.chap_algs'"),
        (4, "Ignoring unknown value 'bogus' for 'node.session.auth.chap_algs'"),
        (5, "unknown value format 'abc' for parameter name 'node.session.cmds_max'; "
            "open-iscsi reads it as '0'"),
    ]  # fmt: skip
    assert str(c.problems[0]).startswith("/etc/iscsi/iscsid.conf:1: ")


# -- templates (idbm_sync_config) ---------------------------------------------------------


def test_missing_file_means_compiled_defaults(tmp_path: Path) -> None:
    c = IscsidConf.load(tmp_path / "nope.conf")
    assert not c.exists and c.values == {} and c.problems == []
    for record in (RecordType.NODE, RecordType.SENDTARGETS, RecordType.ISNS):
        assert c.template(record) == REGISTRY.defaults(record)


def test_load_defaults_to_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path))
    (tmp_path / "etc/iscsi").mkdir(parents=True)
    (tmp_path / "etc/iscsi/iscsid.conf").write_text("node.startup = automatic\n")
    c = IscsidConf.load()
    assert c.path == tmp_path / "etc/iscsi/iscsid.conf"
    assert c.get("node.startup") == "automatic"


def test_unreadable_file_is_a_database_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as exc:
        IscsidConf.load(tmp_path)  # a directory
    assert exc.value.code == IscsiErr.IDBM


def test_invalid_value_keeps_the_previous_one() -> None:
    c = conf("node.startup = automatic\nnode.startup = bogus\nnode.session.scan = Manual\n")
    template = c.template(RecordType.NODE)
    assert template["node.startup"] == "automatic"  # not the default: the last valid value
    assert template["node.session.scan"] == "auto"
    assert c.get("node.startup") == "bogus"  # values are the text, as written


def test_numbers_follow_strtoul() -> None:
    t = conf("node.session.cmds_max = 64abc\nnode.session.queue_depth = x\n").template(
        RecordType.NODE
    )
    assert t["node.session.cmds_max"] == "64"
    assert t["node.session.queue_depth"] == "0"
    c = conf(
        "node.session.cmds_max = 70000000000\nnode.session.auth.username = " + "u" * 300 + "\n"
    )
    assert [m for _, m in messages(c)] == [
        "value '70000000000' for parameter name 'node.session.cmds_max' is out of range "
        "-2147483648..2147483647; open-iscsi reads it as '1280523264'",
        "value for parameter name 'node.session.auth.username' is longer than 255 bytes; "
        "open-iscsi reads it as '" + "u" * 255 + "'",
    ]


def test_keys_reach_their_record_types_only() -> None:
    c = conf(
        "node.conn[0].timeo.login_timeout = 15\n"
        "iface.transport_name = iser\n"
        "discovery.sendtargets.auth.authmethod = CHAP\n"
        "discovery.sendtargets.auth.password = s3cret\n"
        "discovery.isns.use_discoveryd = Yes\n"
        "node.session.auth.chap_algs = SHA256\n"
        "host.auth.username = hba\n"
    )
    node = c.template(RecordType.NODE)
    st = c.template(RecordType.SENDTARGETS)
    isns = c.template(RecordType.ISNS)
    assert node["node.conn[0].timeo.login_timeout"] == "15"
    assert node["iface.transport_name"] == "iser"
    assert "discovery.sendtargets.auth.authmethod" not in node
    assert st["discovery.sendtargets.auth.authmethod"] == "CHAP"
    assert st["discovery.sendtargets.auth.password_length"] == "6"
    # the chap_algs key name is shared by node and sendtargets records
    assert node["node.session.auth.chap_algs"] == st["node.session.auth.chap_algs"] == "SHA256"
    assert isns["discovery.isns.use_discoveryd"] == "Yes"
    assert "discovery.sendtargets.auth.password" not in isns
    assert (7, "unknown parameter name 'host.auth.username' (ignored)") in messages(c)
    with pytest.raises(Exception, match="no template for iface"):
        c.template(RecordType.IFACE)


def test_password_lengths_follow_passwords() -> None:
    t = conf("node.session.auth.password = pässwörd\nnode.session.auth.password_in = x\n").template(
        RecordType.NODE
    )
    assert t["node.session.auth.password_length"] == "10"  # bytes, like strlen
    assert t["node.session.auth.password_in_length"] == "1"
    assert conf("").template(RecordType.NODE)["node.session.auth.password_length"] == "0"


# -- iscsid settings (cfg_get_string_param) ------------------------------------------------


def test_iscsid_settings() -> None:
    c = conf(
        "# iscsid.startup = /commented\n"
        "iscsid.startup=/bin/systemctl start iscsid.socket\n"
        "iscsid.startup = /second\n"
        "iscsid.safe_logout = Yes # trailing\n"
        "iscsid.ipc_auth_uid = Yes\n"
    )
    assert c.startup == "/bin/systemctl start iscsid.socket"  # first wins, '=' without blank ok
    assert not c.safe_logout  # the value is "Yes # trailing"
    assert c.ipc_auth_uid
    assert (3, "iscsid.startup is set again; iscsid uses line 2") in messages(c)
    assert not any("unknown parameter" in m for _, m in messages(c))


def test_iscsid_settings_defaults() -> None:
    c = conf("")
    assert c.startup is None and not c.safe_logout and not c.ipc_auth_uid
    c = conf("iscsid.safe_logout\niscsid.ipc_auth_uid =\n")
    assert not c.safe_logout and not c.ipc_auth_uid
    assert (1, "Invalid config line for iscsid.safe_logout. Missing '='.") in messages(c)
    assert (2, "Invalid config line for iscsid.ipc_auth_uid. Missing value") in messages(c)


# -- the shipped file ---------------------------------------------------------------------


def test_shipped_iscsid_conf_is_open_iscsi_218s() -> None:
    c = IscsidConf.load(SHIPPED)
    assert c.problems == []
    assert c.startup is None and not c.safe_logout and not c.ipc_auth_uid
    expected = {
        k.name: k.iscsid_conf_default
        for record in (RecordType.NODE, RecordType.SENDTARGETS)
        for k in REGISTRY.all_keys(record)
        if k.iscsid_conf_default is not None
    }
    assert {k: v for k, v in c.values.items() if not k.startswith("iscsid.")} == expected
    template = c.template(RecordType.NODE)
    assert template["node.conn[0].timeo.login_timeout"] == "15"
    assert template["node.session.initial_login_retry_max"] == "8"
    text = SHIPPED.read_text()
    assert "#node.session.auth.chap_algs = SHA3-256,SHA256,SHA1,MD5" in text
    assert "# iscsid.startup = /bin/systemctl start iscsid.socket\n" in text
