"""``python -m ledger``: run a ledger node (see :mod:`ledger.node.server`)."""

from ledger.node.server import main

raise SystemExit(main())
