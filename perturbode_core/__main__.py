import sys

from perturbode_core.cli.main import main

sys.exit(main())
