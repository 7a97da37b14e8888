"""The thin front door: the ``wmstudio`` typer app (``cli.main``) and ``make run``'s launcher (``cli.launch``)."""
