"""``python -m sandbox_magic``: the same as the ``sandbox-magic`` command."""

from sandbox_magic.cli import main

raise SystemExit(main())
