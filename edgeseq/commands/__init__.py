"""One module per ``edgeseq`` command; see ``edgeseq.cli.COMMANDS``.

``options`` holds the options that several commands share.
"""
