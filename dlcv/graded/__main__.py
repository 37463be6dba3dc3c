import sys

from dlcv.graded.cli import main

sys.exit(main())
