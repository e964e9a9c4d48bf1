"""`python -m recognition` is the `keyface` command."""
import sys

from recognition.cli import main

sys.exit(main())
