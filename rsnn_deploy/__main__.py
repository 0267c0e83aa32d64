"""``python -m rsnn_deploy`` runs the command line."""

import sys

from rsnn_deploy.cli import main

sys.exit(main())
