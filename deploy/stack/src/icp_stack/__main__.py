import sys

from icp_stack.cli import main

sys.exit(main())
