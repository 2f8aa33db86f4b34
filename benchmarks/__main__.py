"""``python -m benchmarks``: see `benchmarks.run`.

``python -m benchmarks classroom``: see `benchmarks.classroom`.
"""

import sys

if sys.argv[1:2] == ["classroom"]:
    from benchmarks.classroom import main as classroom

    raise SystemExit(classroom(sys.argv[2:]))

from benchmarks.run import main

raise SystemExit(main())
