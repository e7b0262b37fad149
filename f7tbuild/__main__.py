"""``python -m f7tbuild <command>``: see f7tbuild.cli."""

from f7tbuild.cli import main

raise SystemExit(main())
