import sys

from dlcv.cli import main

sys.exit(main())
