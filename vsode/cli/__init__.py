"""The vsode command line: a Typer app, one module per subcommand."""
