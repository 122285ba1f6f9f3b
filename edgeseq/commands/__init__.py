"""One module per ``edgeseq`` command; see ``edgeseq.cli.COMMANDS``."""
