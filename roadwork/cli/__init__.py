"""`roadwork ...`: a thin command line over the platform services. Every listing command has `--json`.

The app and its entry point are in `roadwork.cli.app`; one module per group of commands beside it."""
