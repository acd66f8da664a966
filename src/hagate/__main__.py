from hagate.cli import main

raise SystemExit(main())
