"""``python -m aclstm`` is the ``aclstm`` command."""

import sys

from aclstm.cli import main

sys.exit(main())
