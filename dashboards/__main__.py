import sys

from dashboards.publish import main

sys.exit(main())
