import sys

from vidray.cli import main

sys.exit(main())
