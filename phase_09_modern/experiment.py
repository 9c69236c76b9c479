"""``python -m phase_09_modern.experiment NAME``: the research track's runner under the name it
has always had. The runner itself is ``phase_09_modern/research/runner.py``."""

import sys

from phase_09_modern.research.runner import main

if __name__ == "__main__":
    sys.exit(main())
