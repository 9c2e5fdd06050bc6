"""Fuzz harness: iscsid.conf (:class:`~iscsikit.config.iscsid_conf.IscsidConf`).

Input: the file's bytes, decoded as ``IscsidConf.load`` decodes them (UTF-8,
surrogateescape).  ``IscsidConf.parse`` documents no error: lines it cannot use become
problems (open-iscsi's warnings).  Then the node and discovery templates built
from it and the iscsid settings are read, as a login or ``-o new`` would.
Anything raised is a finding.
"""

from __future__ import annotations

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.config.iscsid_conf import TEMPLATE_RECORDS, IscsidConf


def TestOneInput(data: bytes) -> None:
    conf = IscsidConf.parse(data.decode("utf-8", "surrogateescape"))
    for record in TEMPLATE_RECORDS:
        conf.template(record)
    _ = conf.startup, conf.safe_logout, conf.ipc_auth_uid
    conf.get("node.session.timeo.replacement_timeout")


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
