"""`python -m translate`: the same as the `translate` command."""

from translate.cli import main

raise SystemExit(main())
