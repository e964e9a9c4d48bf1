"""`python -m recognition` is the `keyface` command."""
import sys

from keyface.recognition.cli.main import main

sys.exit(main())
