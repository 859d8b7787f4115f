"""``python -m mpkix`` runs the command line."""

from mpkix.cli import main

raise SystemExit(main())
