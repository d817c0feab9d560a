from wirecorr.cli import main

raise SystemExit(main())
