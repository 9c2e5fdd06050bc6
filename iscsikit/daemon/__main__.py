"""``python -m iscsikit.daemon``: the same as ``iscsikitd``."""

import sys

from iscsikit.daemon.main import main

sys.exit(main())
