from grpo_studio.cli import main

raise SystemExit(main())
